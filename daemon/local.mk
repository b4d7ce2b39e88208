# genqd: the dispatcher daemon (SPEC §4, §6).
sbin_PROGRAMS += genqd

# Everything but main.c, shared with the unit tests.
GENQD_SOURCES = \
	daemon/genqd.h \
	daemon/backend.c \
	daemon/claim.c \
	daemon/comfy.c daemon/comfy.h \
	daemon/comfydrv.c \
	daemon/finish.c \
	daemon/http.c daemon/http.h \
	daemon/media.c daemon/media.h \
	daemon/outputs.c \
	daemon/policy.c daemon/policy.h \
	daemon/recover.c \
	daemon/run.c \
	daemon/sweep.c

genqd_SOURCES = daemon/main.c $(GENQD_SOURCES)
genqd_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS) $(CURL_CFLAGS) $(SYSTEMD_CFLAGS)
genqd_LDADD = $(GENQ_LIB_LIBS) $(CURL_LIBS) $(CRYPTO_LIBS) $(SYSTEMD_LIBS)

# Unit tests of the pure parts: the ComfyUI protocol, names and types of
# stored outputs, retry and price policy. Each includes the .c it tests.
check_PROGRAMS += tests/unit/test_daemon_comfy tests/unit/test_daemon_policy
TESTS += tests/unit/test_daemon_comfy tests/unit/test_daemon_policy

tests_unit_test_daemon_comfy_SOURCES = tests/unit/test_daemon_comfy.c
tests_unit_test_daemon_comfy_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_comfy_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)

tests_unit_test_daemon_policy_SOURCES = tests/unit/test_daemon_policy.c
tests_unit_test_daemon_policy_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/daemon $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_daemon_policy_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)
