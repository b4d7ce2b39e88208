#include "autoconf.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "secure.h"

/* URL-safe alphabet for keys: they travel in headers and shell commands. */
static const char key_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* OpenSSL's DRBG, seeded from the kernel and reseeded after fork(): a
 * getrandom() system call per id would cost more than making the id (genqd
 * makes one per attempt it starts). */
int
gq_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;

		if (RAND_bytes(p, n) != 1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 16 random bytes as a version-4 UUID's text. */
static void
uuid4_format(unsigned char b[16], char out[GQ_UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 0x0f];
	}
	*p = '\0';
}

int
gq_uuid4(char out[GQ_UUID_LEN])
{
	return gq_uuid4_many((char (*)[GQ_UUID_LEN])out, 1);
}

int
gq_uuid4_many(char (*out)[GQ_UUID_LEN], size_t n)
{
	unsigned char b[GQ_UUID_BATCH][16];

	for (size_t at = 0; at < n; at += GQ_UUID_BATCH) {
		size_t k = n - at < GQ_UUID_BATCH ? n - at : GQ_UUID_BATCH;

		if (gq_random_bytes(b, k * sizeof b[0]) < 0)
			return -1;
		for (size_t i = 0; i < k; i++)
			uuid4_format(b[i], out[at + i]);
	}
	return 0;
}

bool
gq_is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return s[36] == '\0';
}

int
gq_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -1;
	return 0;
}

int
gq_sha256_hex(const void *data, size_t len, char out[GQ_SHA256_HEX_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];

	if (gq_sha256(data, len, md) < 0)
		return -1;
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

/* n characters from the alphabet, each uniform (rejection sampling). */
static int
random_chars(char *out, size_t n)
{
	const unsigned limit = 256 - 256 % (sizeof key_alphabet - 1);
	size_t i = 0;

	while (i < n) {
		unsigned char b[64];
		if (gq_random_bytes(b, sizeof b) < 0)
			return -1;
		for (size_t j = 0; j < sizeof b && i < n; j++)
			if (b[j] < limit)
				out[i++] = key_alphabet[b[j] % (sizeof key_alphabet - 1)];
	}
	return 0;
}

int
gq_key_new(char key[GQ_KEY_LEN], char prefix[GQ_KEY_PREFIX_LEN + 1])
{
	char p[8], s[43];

	/* 43 characters of a 62-letter alphabet: over 256 bits. */
	if (random_chars(p, sizeof p) < 0 || random_chars(s, sizeof s) < 0)
		return -1;
	snprintf(prefix, GQ_KEY_PREFIX_LEN + 1, "gq_%.8s", p);
	snprintf(key, GQ_KEY_LEN, "%s_%.43s", prefix, s);
	return 0;
}

int
gq_key_prefix(const char *key, char prefix[GQ_KEY_PREFIX_LEN + 1])
{
	size_t n = strlen(key);

	if (n != GQ_KEY_LEN - 1 || strncmp(key, "gq_", 3) != 0 || key[GQ_KEY_PREFIX_LEN] != '_')
		return -1;
	for (size_t i = 3; i < n; i++)
		if (i != GQ_KEY_PREFIX_LEN && strchr(key_alphabet, key[i]) == NULL)
			return -1;
	memcpy(prefix, key, GQ_KEY_PREFIX_LEN);
	prefix[GQ_KEY_PREFIX_LEN] = '\0';
	return 0;
}

bool
gq_equal_ct(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

int
gq_webhook_secret_new(char out[GQ_WEBHOOK_SECRET_LEN])
{
	unsigned char key[24];

	if (gq_random_bytes(key, sizeof key) < 0)
		return -1;
	memcpy(out, "whsec_", 6);
	EVP_EncodeBlock((unsigned char *)out + 6, key, (int)sizeof key);
	OPENSSL_cleanse(key, sizeof key);
	return 0;
}
