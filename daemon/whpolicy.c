#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "whpolicy.h"

#define SECRET_PREFIX "whsec_"
#define KEY_MAX 256

/* Decode base64 text; OpenSSL counts '=' padding as zero bytes, so drop them. */
static int
base64_decode(const char *text, unsigned char *out, size_t outlen)
{
	size_t len = strlen(text);
	int n;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > outlen)
		return -1;
	n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)len);
	if (n < 0)
		return -1;
	if (text[len - 1] == '=')
		n--;
	if (text[len - 2] == '=')
		n--;
	return n;
}

int
wh_sign(const char *secret, const char *msg_id, int64_t timestamp,
    const void *body, size_t len, char out[WH_SIGNATURE_LEN])
{
	unsigned char key[KEY_MAX], mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	char head[160], digest[] = "SHA256";
	int keylen, headlen;
	EVP_MAC *hmac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int rc = -1;

	if (strncmp(secret, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0)
		secret += strlen(SECRET_PREFIX);
	if ((keylen = base64_decode(secret, key, sizeof key)) <= 0)
		return -1;
	headlen = snprintf(head, sizeof head, "%s.%lld.", msg_id, (long long)timestamp);
	if (headlen < 0 || (size_t)headlen >= sizeof head)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if ((hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (ctx = EVP_MAC_CTX_new(hmac)) == NULL ||
	    EVP_MAC_init(ctx, key, (size_t)keylen, params) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)head, (size_t)headlen) != 1 ||
	    EVP_MAC_update(ctx, body, len) != 1 ||
	    EVP_MAC_final(ctx, mac, &maclen, sizeof mac) != 1)
		goto out;
	memcpy(out, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	OPENSSL_cleanse(key, sizeof key);
	return rc;
}

static int
parse_net(const char *s, struct wh_net *net)
{
	char addr[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	int max;

	if (alen == 0 || alen >= sizeof addr)
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	memset(net, 0, sizeof *net);
	if (inet_pton(AF_INET, addr, net->addr) == 1)
		net->family = AF_INET, max = 32;
	else if (inet_pton(AF_INET6, addr, net->addr) == 1)
		net->family = AF_INET6, max = 128;
	else
		return -1;
	net->prefix = max;
	if (slash != NULL) {
		char *end;
		long p = strtol(slash + 1, &end, 10);

		if (slash[1] == '\0' || *end != '\0' || p < 0 || p > max)
			return -1;
		net->prefix = (int)p;
	}
	return 0;
}

int
wh_allow_parse(const char *text, struct wh_allow *allow, char *err, size_t errlen)
{
	char item[80];
	const char *p = text;

	allow->n = 0;
	while (*p != '\0') {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		for (len = 0; p[len] != '\0' && p[len] != ',' && p[len] != ' ' && p[len] != '\t'; len++)
			;
		if (len >= sizeof item || allow->n == WH_ALLOW_MAX) {
			snprintf(err, errlen, "allow_private: too long or too many entries");
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (parse_net(item, &allow->nets[allow->n]) < 0) {
			snprintf(err, errlen, "allow_private: \"%s\" is not an address or CIDR network", item);
			return -1;
		}
		allow->n++;
		p += len;
	}
	return 0;
}

static bool
prefix_match(const unsigned char *a, const unsigned char *net, int prefix)
{
	int bytes = prefix / 8, bits = prefix % 8;

	if (memcmp(a, net, (size_t)bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	return ((a[bytes] ^ net[bytes]) & (0xff << (8 - bits))) == 0;
}

/* Ranges no webhook may reach unless allow-listed (RFC 6890 and friends). */
static const struct { unsigned char a[4]; int prefix; } v4_special[] = {
	{ { 0, 0, 0, 0 }, 8 },        /* "this" network */
	{ { 10, 0, 0, 0 }, 8 },       /* private */
	{ { 100, 64, 0, 0 }, 10 },    /* carrier-grade NAT */
	{ { 127, 0, 0, 0 }, 8 },      /* loopback */
	{ { 169, 254, 0, 0 }, 16 },   /* link-local, cloud metadata */
	{ { 172, 16, 0, 0 }, 12 },    /* private */
	{ { 192, 0, 0, 0 }, 24 },     /* IETF protocol assignments */
	{ { 192, 0, 2, 0 }, 24 },     /* documentation */
	{ { 192, 88, 99, 0 }, 24 },   /* 6to4 relay */
	{ { 192, 168, 0, 0 }, 16 },   /* private */
	{ { 198, 18, 0, 0 }, 15 },    /* benchmarking */
	{ { 198, 51, 100, 0 }, 24 },  /* documentation */
	{ { 203, 0, 113, 0 }, 24 },   /* documentation */
	{ { 224, 0, 0, 0 }, 4 },      /* multicast */
	{ { 240, 0, 0, 0 }, 4 },      /* reserved, broadcast */
};

static const struct { unsigned char a[16]; int prefix; } v6_special[] = {
	{ { 0 }, 127 },                                     /* :: and ::1 */
	{ { 0x01, 0x00 }, 64 },                             /* discard */
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32 },                 /* documentation */
	{ { 0x20, 0x01, 0x00, 0x00 }, 23 },                 /* IETF protocol assignments */
	{ { 0xfc }, 7 },                                    /* unique local */
	{ { 0xfe, 0x80 }, 10 },                             /* link-local */
	{ { 0xfe, 0xc0 }, 10 },                             /* site-local (old) */
	{ { 0xff }, 8 },                                    /* multicast */
};

static bool
v4_public(const unsigned char a[4])
{
	for (size_t i = 0; i < sizeof v4_special / sizeof v4_special[0]; i++)
		if (prefix_match(a, v4_special[i].a, v4_special[i].prefix))
			return false;
	return true;
}

static bool
allow_listed(const struct wh_allow *allow, int family, const unsigned char *a)
{
	for (size_t i = 0; allow != NULL && i < allow->n; i++)
		if (allow->nets[i].family == family &&
		    prefix_match(a, allow->nets[i].addr, allow->nets[i].prefix))
			return true;
	return false;
}

bool
wh_addr_allowed(const struct wh_allow *allow, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	const unsigned char *a;

	if (sa->sa_family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		return v4_public(a) || allow_listed(allow, AF_INET, a);
	}
	if (sa->sa_family != AF_INET6)
		return false;
	a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
	if (allow_listed(allow, AF_INET6, a))
		return true;
	/* An IPv4 address in IPv6 clothing is judged as the IPv4 address. */
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0)
		return v4_public(a + 12) || allow_listed(allow, AF_INET, a + 12);
	for (size_t i = 0; i < sizeof v6_special / sizeof v6_special[0]; i++)
		if (prefix_match(a, v6_special[i].a, v6_special[i].prefix))
			return false;
	return true;
}

int64_t
wh_backoff_s(int attempts, double jitter)
{
	double s = 5;

	for (int i = 1; i < attempts && s < 3600; i++)
		s *= 2;
	if (s > 3600)
		s = 3600;
	s *= 0.8 + 0.4 * jitter;
	return (int64_t)(s + 0.5);
}
