# genqd: the dispatcher daemon (SPEC §4, §6).
sbin_PROGRAMS += genqd

# Everything but main.c, shared with the unit tests.
GENQD_SOURCES = \
	daemon/genqd.h \
	daemon/aging.c daemon/aging.h \
	daemon/backend.c \
	daemon/claim.c \
	daemon/comfy.c daemon/comfy.h \
	daemon/comfydrv.c \
	daemon/comfyevt.c daemon/comfyevt.h \
	daemon/comfyws.c daemon/comfyws.h \
	daemon/committer.c daemon/committer.h \
	daemon/deps.c \
	daemon/finish.c \
	daemon/http.c daemon/http.h \
	daemon/media.c daemon/media.h \
	daemon/openai.c daemon/openai.h \
	daemon/openaidrv.c \
	daemon/outputs.c \
	daemon/policy.c daemon/policy.h \
	daemon/recover.c \
	daemon/retention.c \
	daemon/run.c \
	daemon/store.c daemon/store.h \
	daemon/sweep.c \
	daemon/webhook.c \
	daemon/whpolicy.c daemon/whpolicy.h \
	daemon/ws.c daemon/ws.h

genqd_SOURCES = daemon/main.c $(GENQD_SOURCES)
genqd_CFLAGS = $(AM_CFLAGS) -pthread $(GENQ_LIB_CFLAGS) $(CURL_CFLAGS) $(WSLAY_CFLAGS) \
	$(SYSTEMD_CFLAGS)
genqd_LDFLAGS = -pthread
genqd_LDADD = $(GENQ_LIB_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) $(WSLAY_LIBS) $(SYSTEMD_LIBS)

# Unit tests of the pure parts: the ComfyUI protocol, names and types of
# stored outputs, retry and price policy. Each includes the .c it tests.
check_PROGRAMS += tests/unit/test_daemon_comfy tests/unit/test_daemon_policy
TESTS += tests/unit/test_daemon_comfy tests/unit/test_daemon_policy
check_PROGRAMS += tests/unit/test_daemon_whpolicy
TESTS += tests/unit/test_daemon_whpolicy
tests_unit_test_daemon_whpolicy_SOURCES = tests/unit/test_daemon_whpolicy.c
tests_unit_test_daemon_whpolicy_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_whpolicy_LDADD = $(GENQ_LIB_LIBS) $(CRYPTO_LIBS) $(CHECK_LIBS)

# The claim's hand-out of locked jobs and when a backend's claim is due.
check_PROGRAMS += tests/unit/test_daemon_claim
TESTS += tests/unit/test_daemon_claim
tests_unit_test_daemon_claim_SOURCES = tests/unit/test_daemon_claim.c
tests_unit_test_daemon_claim_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_claim_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)

# The committer's queue of jobs: order, hand-back, no wait for the loop.
check_PROGRAMS += tests/unit/test_daemon_committer
TESTS += tests/unit/test_daemon_committer
tests_unit_test_daemon_committer_SOURCES = tests/unit/test_daemon_committer.c
tests_unit_test_daemon_committer_CFLAGS = $(AM_CFLAGS) -pthread -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_committer_LDFLAGS = -pthread
tests_unit_test_daemon_committer_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)

tests_unit_test_daemon_comfy_SOURCES = tests/unit/test_daemon_comfy.c
tests_unit_test_daemon_comfy_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_comfy_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)

tests_unit_test_daemon_policy_SOURCES = tests/unit/test_daemon_policy.c
tests_unit_test_daemon_policy_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_policy_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)

# The output store's layout (daemon/store.c), in a scratch folder.
check_PROGRAMS += tests/unit/test_daemon_store
TESTS += tests/unit/test_daemon_store
tests_unit_test_daemon_store_SOURCES = tests/unit/test_daemon_store.c
tests_unit_test_daemon_store_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_store_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)

# The OpenAI-compatible protocol's parsers (daemon/openai.c).
check_PROGRAMS += tests/unit/test_daemon_openai
TESTS += tests/unit/test_daemon_openai
tests_unit_test_daemon_openai_SOURCES = tests/unit/test_daemon_openai.c
tests_unit_test_daemon_openai_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_openai_LDADD = $(GENQ_LIB_LIBS) $(CRYPTO_LIBS) $(CHECK_LIBS)

# The ComfyUI event stream's pure parts: its messages (comfyevt.c) and the
# WebSocket handshake check (ws.c, included with its wslay glue).
check_PROGRAMS += tests/unit/test_daemon_ws
TESTS += tests/unit/test_daemon_ws
tests_unit_test_daemon_ws_SOURCES = tests/unit/test_daemon_ws.c
tests_unit_test_daemon_ws_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CURL_CFLAGS) $(WSLAY_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_ws_LDADD = $(GENQ_LIB_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) $(WSLAY_LIBS) $(CHECK_LIBS)
