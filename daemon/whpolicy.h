/* whpolicy: the pure rules of webhook delivery (SPEC §7), apart from any I/O
 * so they are unit-tested: Standard Webhooks signatures, which destination
 * addresses are refused, and the retry schedule. Knows nothing of genqd. */
#ifndef GENQD_WHPOLICY_H
#define GENQD_WHPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "v1," + base64 of a SHA-256 HMAC, with room to spare. */
#define WH_SIGNATURE_LEN 64
#define WH_ALLOW_MAX 32

/* Sign "msg_id.timestamp.body" with secret ("whsec_" + base64 key bytes, as
 * Standard Webhooks writes them; without the prefix the whole string is the
 * base64 key). Writes "v1,<base64>" to out. Returns 0, or -1 for a secret
 * that is not valid base64 or is empty. */
int wh_sign(const char *secret, const char *msg_id, int64_t timestamp,
    const void *body, size_t len, char out[WH_SIGNATURE_LEN]);

/* A list of networks non-public destinations must be in to be allowed. */
struct wh_net {
	int family;                  /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};
struct wh_allow {
	struct wh_net nets[WH_ALLOW_MAX];
	size_t n;
};

/* Parse "127.0.0.1/32, ::1, 10.0.0.0/8" (a bare address is a single host).
 * Returns 0, or -1 with a one-line message in err. */
int wh_allow_parse(const char *text, struct wh_allow *allow, char *err, size_t errlen);

/* May a delivery connect to sa? Public unicast addresses always may; loopback,
 * private, link-local, shared, documentation, multicast, unspecified and the
 * like (also inside IPv4-mapped and NAT64 IPv6) only when allow-listed. */
bool wh_addr_allowed(const struct wh_allow *allow, const struct sockaddr *sa);

/* Seconds before retry number `attempts` (1 = after the first failure):
 * 5 s doubling to a cap of one hour, spread by jitter in [0, 1) by ±20 %. */
int64_t wh_backoff_s(int attempts, double jitter);

#endif
