# libgenq: code shared by genq-fcgi, genqd and genqctl.
noinst_LIBRARIES += lib/libgenq.a
lib_libgenq_a_CFLAGS = $(AM_CFLAGS) $(MARIADB_CFLAGS) $(JSONC_CFLAGS) $(CRYPTO_CFLAGS) $(INIH_CFLAGS)
lib_libgenq_a_SOURCES = \
	lib/buf.c lib/buf.h \
	lib/config.c lib/config.h \
	lib/fairshare.c lib/fairshare.h \
	lib/db.c lib/db.h \
	lib/deps.c lib/deps.h \
	lib/gqtime.c lib/gqtime.h \
	lib/jobadmin.c lib/jobadmin.h \
	lib/jobevent.c lib/jobevent.h \
	lib/jobstatus.c lib/jobstatus.h \
	lib/jobjson.c lib/jobjson.h \
	lib/jsonutil.c lib/jsonutil.h \
	lib/ledger.c lib/ledger.h \
	lib/log.c lib/log.h \
	lib/secure.c lib/secure.h \
	lib/sqlrows.c lib/sqlrows.h \
	lib/wake.c lib/wake.h

# What every binary linking libgenq.a needs.
GENQ_LIB_LIBS = lib/libgenq.a $(MARIADB_LIBS) $(JSONC_LIBS) $(CRYPTO_LIBS) $(INIH_LIBS)
GENQ_LIB_CFLAGS = $(MARIADB_CFLAGS) $(JSONC_CFLAGS) $(CRYPTO_CFLAGS) $(INIH_CFLAGS)
