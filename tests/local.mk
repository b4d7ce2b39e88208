# Unit tests (Check) and end-to-end tests (Python, against the real stack).
check_PROGRAMS += tests/unit/test_lib
tests_unit_test_lib_CFLAGS = $(AM_CFLAGS) $(GENQ_LIB_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_lib_LDADD = $(GENQ_LIB_LIBS) $(CHECK_LIBS)
TESTS += tests/unit/test_lib

# The C ComfyUI simulator of the dispatch benchmark (tests/sim/README.md).
noinst_PROGRAMS += tests/sim/comfysim
tests_sim_comfysim_SOURCES = tests/sim/comfysim.c tests/sim/comfysim.h \
	tests/sim/comfysim_http.c tests/sim/comfysim_png.c tests/sim/comfysim_py.c \
	tests/sim/comfysim_queue.c tests/sim/comfysim_run.c tests/sim/comfysim_save.c \
	tests/sim/comfysim_valid.c tests/sim/comfysim_valid.h tests/sim/comfysim_ws.c \
	tests/sim/simhttp.c tests/sim/simhttp.h
tests_sim_comfysim_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JSONC_CFLAGS) $(WSLAY_CFLAGS) \
	$(ZLIB_CFLAGS) $(CRYPTO_CFLAGS)
tests_sim_comfysim_LDADD = $(MHD_LIBS) $(JSONC_LIBS) $(WSLAY_LIBS) $(ZLIB_LIBS) $(CRYPTO_LIBS) -lpthread

# The C OpenAI-compatible simulator of the dispatch benchmark (the same).
noinst_PROGRAMS += tests/sim/oaisim
tests_sim_oaisim_SOURCES = tests/sim/oaisim.c tests/sim/comfysim.h tests/sim/comfysim_png.c \
	tests/sim/simhttp.c tests/sim/simhttp.h
tests_sim_oaisim_CFLAGS = $(AM_CFLAGS) $(MHD_CFLAGS) $(JSONC_CFLAGS) $(ZLIB_CFLAGS) $(CRYPTO_CFLAGS)
tests_sim_oaisim_LDADD = $(MHD_LIBS) $(JSONC_LIBS) $(ZLIB_LIBS) $(CRYPTO_LIBS) -lpthread

# End-to-end: each file starts its own stack in a temporary directory.
E2E_TESTS = \
	tests/sim/test_comfyui_sim.py \
	tests/sim/test_openai_sim.py \
	tests/sim/test_comfysim.py \
	tests/sim/test_oaisim.py \
	tests/e2e/test_openai.py \
	tests/e2e/test_jobs.py \
	tests/e2e/test_api.py \
	tests/e2e/test_admission.py \
	tests/e2e/test_errors.py \
	tests/e2e/test_log_escaping.py \
	tests/e2e/test_page.py \
	tests/e2e/test_genqctl.py \
	tests/e2e/test_cgi.py \
	tests/e2e/test_dispatch.py \
	tests/e2e/test_wake.py \
	tests/e2e/test_retry_backend.py \
	tests/e2e/test_progress.py \
	tests/e2e/test_tls_backend.py \
	tests/e2e/test_deps.py \
	tests/e2e/test_retention.py \
	tests/e2e/test_order.py \
	tests/e2e/test_admin.py \
	tests/e2e/test_metrics.py \
	tests/e2e/test_docs.py \
	tests/e2e/test_webhooks.py \
	tests/e2e/test_reporting.py \
	tests/e2e/test_crash.py \
	tests/e2e/test_two_genqd.py \
	tests/e2e/test_stalled_session.py \
	tests/e2e/test_systemd_notify.py \
	tests/e2e/test_mariadb_restart.py \
	tests/e2e/test_backend_restart.py \
	tests/e2e/test_health.py \
	tests/e2e/test_backend_keys.py \
	tests/e2e/test_comfysim_dispatch.py \
	tests/e2e/test_oaisim_dispatch.py \
	tests/e2e/test_busy_genqd.py \
	tests/e2e/test_query_plans.py \
	tests/e2e/test_claim_open.py \
	tests/e2e/test_connection_reuse.py
TESTS += $(E2E_TESTS)
TEST_EXTENSIONS = .py
PY_LOG_COMPILER = python3
AM_TESTS_ENVIRONMENT = GENQ_BUILDDIR='$(abs_top_builddir)'; export GENQ_BUILDDIR; \
	PYTHONDONTWRITEBYTECODE=1; export PYTHONDONTWRITEBYTECODE;
EXTRA_DIST += $(E2E_TESTS) tests/e2e/stack.py tests/e2e/harness.py tests/sim/comfyui_sim.py tests/sim/README.md tests/summary.py
# test_docs.py runs the API document's examples.
EXTRA_DIST += docs/api.md docs/openapi.json
EXTRA_DIST += tests/sim/openai_sim.py tests/sim/simpair.py
# The crash-safety tests' shared invariant checks.
EXTRA_DIST += tests/e2e/crashcheck.py
