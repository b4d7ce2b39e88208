# genqctl: the operator's command-line tool (SPEC §11). Everything but main()
# lives in a small library so the unit tests link the same code.
noinst_LIBRARIES += ctl/libgenqctl.a
ctl_libgenqctl_a_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS) $(CURL_CFLAGS)
ctl_libgenqctl_a_SOURCES = \
	ctl/ctl.h ctl/ctl.c \
	ctl/args.c ctl/table.c \
	ctl/migrate.c \
	ctl/users.c ctl/keys.c ctl/credits.c \
	ctl/tiers.c ctl/queues.c ctl/backends.c \
	ctl/jobs.c ctl/stats.c

CTL_LIBS = ctl/libgenqctl.a $(GENQ_LIB_LIBS) $(CURL_LIBS)

bin_PROGRAMS += genqctl
genqctl_SOURCES = ctl/main.c
genqctl_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS)
genqctl_LDADD = $(CTL_LIBS)

check_PROGRAMS += tests/unit/test_ctl_args tests/unit/test_ctl_migrate
TESTS += tests/unit/test_ctl_args tests/unit/test_ctl_migrate
tests_unit_test_ctl_args_SOURCES = tests/unit/test_ctl_args.c
tests_unit_test_ctl_args_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/ctl
tests_unit_test_ctl_args_LDADD = $(CTL_LIBS) $(CHECK_LIBS)
tests_unit_test_ctl_migrate_SOURCES = tests/unit/test_ctl_migrate.c
tests_unit_test_ctl_migrate_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS) -I$(top_srcdir)/ctl
tests_unit_test_ctl_migrate_LDADD = $(CTL_LIBS) $(CHECK_LIBS)
