/* secure: identifiers and secrets. Job ids are RFC 9562 version-4 UUIDs
 * (122 random bits); API keys are "gq_" + an 8-character lookup prefix +
 * "_" + 43 characters of a 256-bit secret, stored only as SHA-256. */
#ifndef GENQ_SECURE_H
#define GENQ_SECURE_H

#include <stdbool.h>
#include <stddef.h>

#define GQ_UUID_LEN 37            /* 36 chars + NUL */
#define GQ_SHA256_HEX_LEN 65      /* 64 chars + NUL */
#define GQ_KEY_PREFIX_LEN 11      /* "gq_" + 8, the stored lookup handle */
#define GQ_KEY_LEN 56             /* prefix + "_" + 43 + NUL */

/* Fill buf with len bytes from a CSPRNG (OpenSSL's, seeded by the kernel); 0 or -1. */
int gq_random_bytes(void *buf, size_t len);

/* A new lowercase version-4 UUID. Returns 0 or -1. */
int gq_uuid4(char out[GQ_UUID_LEN]);

/* n of them at once, from one call to the random source per
 * GQ_UUID_BATCH. Returns 0 or -1. */
#define GQ_UUID_BATCH 64
int gq_uuid4_many(char (*out)[GQ_UUID_LEN], size_t n);

/* True when s is a lowercase or uppercase canonical UUID (any version). */
bool gq_is_uuid(const char *s);

/* SHA-256 of data as 64 lowercase hex characters. 0 or -1. */
int gq_sha256_hex(const void *data, size_t len, char out[GQ_SHA256_HEX_LEN]);

/* Raw 32-byte SHA-256. 0 or -1. */
int gq_sha256(const void *data, size_t len, unsigned char out[32]);

/* A new API key: fills key (to hand out once) and prefix (to store). */
int gq_key_new(char key[GQ_KEY_LEN], char prefix[GQ_KEY_PREFIX_LEN + 1]);

/* Split a presented key into its prefix; -1 if it is not shaped like a key. */
int gq_key_prefix(const char *key, char prefix[GQ_KEY_PREFIX_LEN + 1]);

/* A new webhook signing secret as Standard Webhooks writes them: "whsec_"
 * + base64 of 24 random bytes. 0 or -1. */
#define GQ_WEBHOOK_SECRET_LEN 39  /* 6 + 32 + NUL */
int gq_webhook_secret_new(char out[GQ_WEBHOOK_SECRET_LEN]);

/* Constant-time equality of two equal-length buffers. */
bool gq_equal_ct(const void *a, const void *b, size_t len);

#endif
