# Fuzz targets for the parsers of outside input (tests/fuzz/README.md).
# Each target is built from the objects and sources genq-fcgi and genqd are
# built from. Without --enable-fuzzing each is a plain program (replay.c's
# main) that `make check` runs once over its seed corpus; with it (clang),
# a libFuzzer binary that `make fuzz` runs for FUZZ_SECONDS each.
FUZZ_TARGETS = tests/fuzz/fuzz_submit tests/fuzz/fuzz_route tests/fuzz/fuzz_comfy \
	tests/fuzz/fuzz_openai
# One test per target: tests/fuzz/run.sh reads the target's options file.
FUZZ_TESTS = tests/fuzz/submit.fuzz tests/fuzz/route.fuzz tests/fuzz/comfy.fuzz \
	tests/fuzz/openai.fuzz

check_PROGRAMS += $(FUZZ_TARGETS)
TESTS += $(FUZZ_TESTS)
TEST_EXTENSIONS += .fuzz
FUZZ_LOG_COMPILER = $(SHELL) $(top_srcdir)/tests/fuzz/run.sh
EXTRA_DIST += $(FUZZ_TESTS) tests/fuzz/run.sh tests/fuzz/README.md \
	tests/fuzz/corpus tests/fuzz/json.dict

FUZZ_COMPILE_FLAGS = $(AM_CFLAGS) -I$(top_srcdir)/fcgi -I$(top_srcdir)/daemon \
	$(GENQ_LIB_CFLAGS) $(FCGI_CFLAGS) $(CURL_CFLAGS)

if FUZZING
AM_FUZZ_LOG_FLAGS = --fuzz
FUZZ_MAIN =
FUZZ_LINK_FLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
else
AM_FUZZ_LOG_FLAGS = --replay
FUZZ_MAIN = tests/fuzz/replay.c
FUZZ_LINK_FLAGS = $(AM_LDFLAGS)
endif

tests_fuzz_fuzz_submit_SOURCES = tests/fuzz/fuzz_submit.c tests/fuzz/fuzz.h $(FUZZ_MAIN)
tests_fuzz_fuzz_submit_CFLAGS = $(FUZZ_COMPILE_FLAGS)
tests_fuzz_fuzz_submit_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_submit_LDADD = $(GENQ_FCGI_LIBS)

tests_fuzz_fuzz_route_SOURCES = tests/fuzz/fuzz_route.c tests/fuzz/fuzz.h $(FUZZ_MAIN)
tests_fuzz_fuzz_route_CFLAGS = $(FUZZ_COMPILE_FLAGS)
tests_fuzz_fuzz_route_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_route_LDADD = $(GENQ_FCGI_LIBS)

tests_fuzz_fuzz_comfy_SOURCES = tests/fuzz/fuzz_comfy.c tests/fuzz/fuzz.h \
	daemon/comfy.c daemon/comfy.h daemon/media.c daemon/media.h $(FUZZ_MAIN)
tests_fuzz_fuzz_comfy_CFLAGS = $(FUZZ_COMPILE_FLAGS)
tests_fuzz_fuzz_comfy_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_comfy_LDADD = $(GENQ_LIB_LIBS)

tests_fuzz_fuzz_openai_SOURCES = tests/fuzz/fuzz_openai.c tests/fuzz/fuzz.h \
	daemon/openai.c daemon/openai.h $(FUZZ_MAIN)
tests_fuzz_fuzz_openai_CFLAGS = $(FUZZ_COMPILE_FLAGS)
tests_fuzz_fuzz_openai_LDFLAGS = $(FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_openai_LDADD = $(GENQ_LIB_LIBS) $(CRYPTO_LIBS)

# `make fuzz`: build the targets and run only the fuzz tests. Results of
# other tests in this tree are removed first, so that tests/summary.py
# counts exactly the fuzzers here.
.PHONY: fuzz
fuzz: $(FUZZ_TARGETS)
	@rm -f $(TEST_LOGS) $(TEST_LOGS:.log=.trs)
	$(MAKE) $(AM_MAKEFLAGS) check-TESTS TESTS='$(FUZZ_TESTS)' \
	    check_PROGRAMS='$(FUZZ_TARGETS)'
