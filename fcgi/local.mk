# genq-fcgi: the API's FastCGI responder (also a plain CGI program).
# Everything but main.c is a small library so the unit tests link the same
# objects the binary does.
noinst_LIBRARIES += fcgi/libgenqfcgi.a
fcgi_libgenqfcgi_a_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS) $(FCGI_CFLAGS) $(CURL_CFLAGS)
fcgi_libgenqfcgi_a_SOURCES = \
	fcgi/admin.c \
	fcgi/app.c fcgi/app.h \
	fcgi/auth.c \
	fcgi/dispatch.c \
	fcgi/idempotency.c \
	fcgi/jobs.c \
	fcgi/jobspec.c fcgi/jobspec.h \
	fcgi/listing.c \
	fcgi/me.c \
	fcgi/metrics.c \
	fcgi/public.c \
	fcgi/queues.c \
	fcgi/quota.c \
	fcgi/ratelimit.c \
	fcgi/regenerate.c \
	fcgi/req.c \
	fcgi/resp.c \
	fcgi/route.c \
	fcgi/submit.c

GENQ_FCGI_LIBS = fcgi/libgenqfcgi.a $(GENQ_LIB_LIBS) $(FCGI_LIBS) $(CURL_LIBS)

sbin_PROGRAMS += genq-fcgi
genq_fcgi_SOURCES = fcgi/main.c
genq_fcgi_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS) $(FCGI_CFLAGS) $(CURL_CFLAGS)
genq_fcgi_LDADD = $(GENQ_FCGI_LIBS)

# Unit tests (Check).
GENQ_FCGI_TEST_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/fcgi $(GENQ_LIB_CFLAGS) \
	$(FCGI_CFLAGS) $(CURL_CFLAGS) $(CHECK_CFLAGS)
GENQ_FCGI_TEST_LIBS = $(GENQ_FCGI_LIBS) $(CHECK_LIBS)

check_PROGRAMS += tests/unit/test_fcgi_route tests/unit/test_fcgi_jobspec tests/unit/test_fcgi_resp
TESTS += tests/unit/test_fcgi_route tests/unit/test_fcgi_jobspec tests/unit/test_fcgi_resp

# The admission limits' arithmetic and header checks (no database).
check_PROGRAMS += tests/unit/test_fcgi_admission
TESTS += tests/unit/test_fcgi_admission
tests_unit_test_fcgi_admission_SOURCES = tests/unit/test_fcgi_admission.c
tests_unit_test_fcgi_admission_CFLAGS = $(GENQ_FCGI_TEST_CFLAGS)
tests_unit_test_fcgi_admission_LDADD = $(GENQ_FCGI_TEST_LIBS)

tests_unit_test_fcgi_route_SOURCES = tests/unit/test_fcgi_route.c
tests_unit_test_fcgi_route_CFLAGS = $(GENQ_FCGI_TEST_CFLAGS)
tests_unit_test_fcgi_route_LDADD = $(GENQ_FCGI_TEST_LIBS)

tests_unit_test_fcgi_jobspec_SOURCES = tests/unit/test_fcgi_jobspec.c
tests_unit_test_fcgi_jobspec_CFLAGS = $(GENQ_FCGI_TEST_CFLAGS)
tests_unit_test_fcgi_jobspec_LDADD = $(GENQ_FCGI_TEST_LIBS)

tests_unit_test_fcgi_resp_SOURCES = tests/unit/test_fcgi_resp.c
tests_unit_test_fcgi_resp_CFLAGS = $(GENQ_FCGI_TEST_CFLAGS)
tests_unit_test_fcgi_resp_LDADD = $(GENQ_FCGI_TEST_LIBS)
