#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "aging.h"
#include "comfyws.h"
#include "committer.h"
#include "db.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "wake.h"

#define US_PER_MS 1000LL
#define US_PER_S 1000000LL
#define RELOAD_EVERY_US (2 * US_PER_S)     /* backends table */
#define RELOAD_MIN_US (500 * US_PER_MS)    /* soonest reload after a wake-up */
#define SWEEP_EVERY_US US_PER_S            /* cancels, timeouts, leases */
#define RECOVER_EVERY_US (2 * US_PER_S)
#define AGING_EVERY_US US_PER_S            /* priority aging (aging.c) */
#define WAIT_MAX_MS 250                    /* the loop looks at its timers this often */
/* Memory freed stays with genqd up to this much at the top of a heap, and
 * only blocks from this size on are mapped on their own (glibc's defaults,
 * 128 KiB and a threshold that moves, trim and map far more often). */
#define GENQD_TRIM_THRESHOLD (32 << 20)
#define GENQD_MMAP_THRESHOLD (1 << 20)
/* A claim or a batch in its thread for [daemon] stall_s (default 300 s)
 * is on a connection that will not answer (a peer gone without a reset; no
 * read timeout, so migrations may run long): the watchdog is left to
 * restart genqd. The default is longer than any legitimate wait (lock waits
 * of 50 s, retried). Checked this often, or at half of stall_s if that is
 * sooner. */
#define STALL_CHECK_EVERY_US (10 * US_PER_S)
#define DB_BACKOFF_MIN_MS 250
#define DB_BACKOFF_MAX_MS 10000

/* Set by signal handlers, acted on by the loop. */
static volatile sig_atomic_t got_term, got_hup;

static void
on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

static void
on_hup(int sig)
{
	(void)sig;
	got_hup = 1;
}

static int
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return -1;
	sa.sa_handler = on_hup;
	if (sigaction(SIGHUP, &sa, NULL) < 0)
		return -1;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

static void
notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: genqd [--config PATH] [--foreground]\n"
	    "  --config PATH  configuration file (else $GENQ_CONFIG, else %s)\n"
	    "  --foreground   run in the foreground (genqd never forks; accepted for\n"
	    "                 service managers and scripts that pass it)\n",
	    config_path(NULL));
}

bool
gqd_db_ready(const struct genqd *g)
{
	return g->db != NULL && !g->db_down;
}

void
gqd_db_failed(struct genqd *g, int rc, const char *what)
{
	if (rc == DB_GONE) {
		if (!g->db_down)
			log_warn("db_lost", "step=%s error=\"%s\"", what,
			    log_q(g->db ? db_error(g->db) : ""));
		g->db_down = true;
		return;
	}
	log_error("db_error", "step=%s status=%d error=\"%s\"", what, rc,
	    log_q(g->db ? db_error(g->db) : ""));
}

/* Connect, or reconnect, when the backoff allows. */
static void
db_maintain(struct genqd *g, int64_t now)
{
	char err[256];

	if (gqd_db_ready(g) || now < g->db_retry_at)
		return;
	if (db_ensure(&g->db, g->cfg, err, sizeof err) == DB_OK) {
		g->db_down = false;
		log_info("db_connected", "backoff_ms=%d", g->db_backoff_ms);
		g->db_backoff_ms = 0;
		return;
	}
	log_warn("db_connect_failed", "error=\"%s\"", log_q(err));
	g->db_backoff_ms = g->db_backoff_ms ? g->db_backoff_ms * 2 : DB_BACKOFF_MIN_MS;
	if (g->db_backoff_ms > DB_BACKOFF_MAX_MS)
		g->db_backoff_ms = DB_BACKOFF_MAX_MS;
	g->db_retry_at = now + g->db_backoff_ms * US_PER_MS;
}

static void
apply_log_level(const struct genq_config *cfg)
{
	enum log_level lvl;

	if (log_level_parse(cfg->log_level, &lvl) == 0)
		log_set_threshold(lvl);
	else
		log_warn("config_bad_log_level", "level=%s", cfg->log_level);
}

/* SIGHUP: take the settings that can change while running. Connection
 * settings and paths stay as they were at startup. */
static void
swap_backend_keys(struct genq_config *a, struct genq_config *b)
{
	struct backend_key *keys = a->backend_keys;
	size_t n = a->nbackend_keys;

	a->backend_keys = b->backend_keys;
	a->nbackend_keys = b->nbackend_keys;
	b->backend_keys = keys;
	b->nbackend_keys = n;
}

static void
reload_config(struct genqd *g)
{
	struct genq_config fresh;
	char err[512];

	if (config_load(&fresh, g->config_path, err, sizeof err) < 0) {
		log_error("config_reload_failed", "error=\"%s\"", log_q(err));
		config_free(&fresh);
		return;
	}
	g->cfg->poll_interval_ms = fresh.poll_interval_ms;
	g->cfg->history_poll_ms = fresh.history_poll_ms;
	g->cfg->lease_s = fresh.lease_s;
	g->cfg->shutdown_grace_s = fresh.shutdown_grace_s;
	g->cfg->http_timeout_s = fresh.http_timeout_s;
	g->cfg->max_output_bytes = fresh.max_output_bytes;
	g->cfg->stall_s = fresh.stall_s;
	free(g->cfg->log_level);
	g->cfg->log_level = fresh.log_level;
	fresh.log_level = NULL;
	swap_backend_keys(g->cfg, &fresh);     /* used from the next request on */
	config_free(&fresh);
	apply_log_level(g->cfg);
	http_set_timeout(g->http, g->cfg->http_timeout_s);
	log_info("config_reloaded", "path=%s poll_interval_ms=%d history_poll_ms=%d lease_s=%d",
	    g->config_path, g->cfg->poll_interval_ms, g->cfg->history_poll_ms, g->cfg->lease_s);
}

static void
set_identity(struct genqd *g)
{
	char host[256];

	if (g->cfg->daemon_id[0] != '\0') {
		snprintf(g->id, sizeof g->id, "%s", g->cfg->daemon_id);
	} else {
		if (gethostname(host, sizeof host) < 0)
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		/* The id is visible ASCII (config.h): so is what stands in for
		 * any other byte of the host name. */
		for (char *c = host; *c != '\0'; c++)
			if (*c < 0x21 || *c > 0x7e)
				*c = '_';
		snprintf(g->id, sizeof g->id, "%.80s:%ld", host, (long)getpid());
	}
	snprintf(g->actor, sizeof g->actor, "genqd:%s", g->id);
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

struct timers {
	int64_t reload_at, last_reload, sweep_at, recover_at, aging_at, watchdog_at, stall_at;
	int64_t watchdog_every;          /* 0: no watchdog */
	bool stalled;                    /* a database thread is stuck: no watchdog pings */
};

/* Is this database thread stuck on a job (longer than stall_us)? Logged. */
static bool
db_thread_stalled(const struct committer *c, int64_t now, int64_t stall_us)
{
	int64_t since = committer_busy_since(c);

	if (since == 0 || now - since <= stall_us)
		return false;
	log_error("db_thread_stalled", "thread=%s in_flight_s=%lld", committer_name(c),
	    (long long)((now - since) / US_PER_S));
	return true;
}

/* Is any of them stuck? Each stuck one is logged. */
static bool
db_threads_stalled(const struct genqd *g, int64_t now)
{
	int64_t stall_us = (int64_t)g->cfg->stall_s * US_PER_S;
	bool stalled = db_thread_stalled(g->committer, now, stall_us);

	for (int i = 0; i < GQD_CLAIMERS; i++)
		stalled |= db_thread_stalled(g->claimer[i], now, stall_us);
	return stalled;
}

static int64_t
stall_check_every(const struct genqd *g)
{
	int64_t half = (int64_t)g->cfg->stall_s * US_PER_S / 2;

	return half < STALL_CHECK_EVERY_US ? half : STALL_CHECK_EVERY_US;
}

static void
run_timers(struct genqd *g, struct timers *t, int64_t now)
{
	db_maintain(g, now);
	if (gqd_db_ready(g))
		backend_leases(g, now);
	if (gqd_db_ready(g) && !g->stopping && (now >= t->recover_at || g->recover_now)) {
		/* The jobs a claim in flight started are running with no run
		 * here yet: recovery would take them for orphans. It waits for
		 * the claim to come back, and no claim starts until it ran. */
		g->claim_hold = claim_pending(g);
		if (!g->claim_hold) {
			g->recover_now = false;
			recover_tick(g);
			t->recover_at = now + RECOVER_EVERY_US;
		}
	}
	if (gqd_db_ready(g) && now >= t->sweep_at) {
		sweep_tick(g, now);
		t->sweep_at = now + SWEEP_EVERY_US;
	}
	if (gqd_db_ready(g) && !g->stopping && now >= t->aging_at) {
		aging_tick(g);
		t->aging_at = now + AGING_EVERY_US;
	}
	/* Completions first: the slots they free are claimed right after. */
	finish_flush(g, now);
	if (gqd_db_ready(g) && !g->stopping)
		deps_tick(g, now);
	claim_due(g, now);
	/* The prompts just launched go out now, not after the rest of this
	 * turn's work: an idle backend starts sooner. */
	http_send(g->http);
	if (gqd_db_ready(g) && !g->stopping)
		webhook_tick(g, now);
	/* After the claim: a wake-up (a new job, often) reloads the backends
	 * too, and the job should not wait for that. New backends get their
	 * lease at once and their first claim at the next turn. */
	if (gqd_db_ready(g) && now >= t->reload_at) {
		backend_reload(g);
		t->last_reload = now;
		t->reload_at = now + RELOAD_EVERY_US;
		if (gqd_db_ready(g))
			backend_leases(g, now);
	}
	backend_probes(g, now);
	comfyws_tick(g, now);
	run_tick(g, now);
	if (now >= t->stall_at) {
		t->stalled = db_threads_stalled(g, now);
		t->stall_at = now + stall_check_every(g);
	}
	if (t->watchdog_every && now >= t->watchdog_at) {
		if (!t->stalled)
			notify("WATCHDOG=1");
		t->watchdog_at = now + t->watchdog_every;
	}
}

static void
begin_stop(struct genqd *g, int64_t now)
{
	if (g->stopping) {
		/* A second signal: hand back at once. */
		g->stop_deadline = now;
		log_info("shutdown_now", "running=%zu", g->nruns);
		return;
	}
	g->stopping = true;
	g->stop_deadline = now + (int64_t)g->cfg->shutdown_grace_s * US_PER_S;
	notify("STOPPING=1");
	log_info("shutdown_begin", "running=%zu grace_s=%d", g->nruns, g->cfg->shutdown_grace_s);
}

/* A wake-up from a handler: a job became claimable in queue, or (NULL)
 * anything may have changed (approval, undrain, cancel). */
static void
on_wake(void *arg, const char *queue)
{
	struct genqd *g = arg;

	if (queue != NULL)
		claim_soon_for(g, queue);
	else
		claim_soon(g);
}

static void
loop(struct genqd *g)
{
	struct timers t;
	int64_t now = gq_mono_us();

	memset(&t, 0, sizeof t);
#ifdef HAVE_SYSTEMD
	{
		uint64_t usec = 0;
		if (sd_watchdog_enabled(0, &usec) > 0)
			t.watchdog_every = (int64_t)usec / 2;
	}
#endif
	for (;;) {
		int64_t next;
		/* The wake-up socket, and the threads' ends of a batch or a
		 * claim (which the next turn's finish_flush, claim_due take up). */
		int fds[2 + GQD_CLAIMERS] = { g->wake_fd, committer_fd(g->committer) };
		bool ready[2 + GQD_CLAIMERS];

		for (int i = 0; i < GQD_CLAIMERS; i++)
			fds[2 + i] = committer_fd(g->claimer[i]);

		http_perform(g->http);
		run_reap(g);
		now = gq_mono_us();
		if (got_term) {
			got_term = 0;
			begin_stop(g, now);
		}
		if (got_hup) {
			got_hup = 0;
			reload_config(g);
		}
		if (g->stopping && ((g->nruns == 0 && !claim_pending(g)) || now >= g->stop_deadline))
			break;
		run_timers(g, &t, now);
		run_reap(g);

		next = now + WAIT_MAX_MS * US_PER_MS;
		next = min64(next, run_next_deadline(g));
		next = min64(next, finish_next_deadline(g));
		next = min64(next, comfyws_next_deadline(g));
		if (gqd_db_ready(g) && !g->stopping) {
			next = min64(next, claim_next_deadline(g));
			next = min64(next, webhook_next_deadline(g));
		}
		if (g->stopping)
			next = min64(next, g->stop_deadline);
		now = gq_mono_us();
		comfyws_wait(g, fds, 2 + GQD_CLAIMERS,
		    next > now ? (int)((next - now + 999) / 1000) : 0, ready);
		if (ready[0]) {
			wake_drain(g->wake_fd, on_wake, g);
			t.reload_at = min64(t.reload_at, t.last_reload + RELOAD_MIN_US);
		}
	}
}

static void
shut_down(struct genqd *g)
{
	size_t left;

	claim_drain(g);                     /* its jobs are handed back below */
	finish_drain(g);                    /* what ended is recorded, not handed back */
	run_reap(g);
	left = g->nruns;
	if (gqd_db_ready(g)) {
		int handed = finish_hand_back(g, 0);

		backend_release_all(g);
		log_info("shutdown_done", "handed_back=%d unfinished=%zu", handed, left);
	} else {
		log_warn("shutdown_done", "handed_back=0 unfinished=%zu db=down", left);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct genq_config cfg;
	struct genqd g;
	const char *explicit_path = NULL;
	char err[512];
	int c, rc = 1;

	log_set_program("genqd");
	/* Every request's libcurl handle brings some 80 KiB of buffers (its
	 * download and upload buffers), freed when it ends: with glibc's
	 * defaults the heap's top went back to the kernel and was faulted in
	 * again many times a second. */
	mallopt(M_TRIM_THRESHOLD, GENQD_TRIM_THRESHOLD);
	mallopt(M_MMAP_THRESHOLD, GENQD_MMAP_THRESHOLD);
	while ((c = getopt_long(argc, argv, "c:fhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			explicit_path = optarg;
			break;
		case 'f':
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("genqd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	memset(&g, 0, sizeof g);
	g.wake_fd = -1;
	g.cfg = &cfg;
	g.config_path = config_path(explicit_path);
	if (config_load(&cfg, g.config_path, err, sizeof err) < 0 ||
	    config_check_daemon_files(&cfg, g.config_path, err, sizeof err) < 0) {
		fprintf(stderr, "genqd: %s\n", err);
		config_free(&cfg);
		return 1;
	}
	apply_log_level(&cfg);
	set_identity(&g);
	if (install_signals() < 0) {
		fprintf(stderr, "genqd: sigaction: %s\n", strerror(errno));
		goto out;
	}
	if (mkdir(cfg.output_dir, 0755) < 0 && errno != EEXIST)
		log_warn("output_dir_unusable", "path=%s error=\"%s\"", cfg.output_dir, strerror(errno));
	g.http = http_new();
	if (g.http == NULL) {
		fprintf(stderr, "genqd: cannot initialize libcurl\n");
		goto out;
	}
	http_set_timeout(g.http, cfg.http_timeout_s);
	if (http_set_ca_file(g.http, cfg.backend_ca_file) < 0)
		goto out;
	if (cfg.wake_socket[0] != '\0') {
		g.wake_fd = wake_listen(cfg.wake_socket);
		if (g.wake_fd < 0)
			log_warn("wake_listen_failed", "path=%s error=\"%s\"", cfg.wake_socket,
			    strerror(errno));
	}
	log_info("start", "id=%s config=%s wake_socket=%s output_dir=%s", g.id, g.config_path,
	    g.wake_fd >= 0 ? cfg.wake_socket : "-", cfg.output_dir);
	db_maintain(&g, gq_mono_us());
	if ((g.committer = committer_new(&cfg, "committer", err, sizeof err)) == NULL) {
		fprintf(stderr, "genqd: cannot start a database thread: %s\n", err);
		goto out;
	}
	for (int i = 0; i < GQD_CLAIMERS; i++) {
		char name[16];

		snprintf(name, sizeof name, "claimer%d", i);
		if ((g.claimer[i] = committer_new(&cfg, name, err, sizeof err)) == NULL) {
			fprintf(stderr, "genqd: cannot start a database thread: %s\n", err);
			goto out;
		}
	}
	notify("READY=1");

	loop(&g);
	shut_down(&g);
	rc = 0;
out:
	claim_drain(&g);
	for (int i = 0; i < GQD_CLAIMERS; i++)
		committer_free(g.claimer[i]);
	committer_free(g.committer);      /* before the runs its batch points to */
	finish_free(&g);
	for (struct run *r = g.runs; r != NULL; r = r->next)
		run_release(&g, r);
	run_reap(&g);
	comfyws_free_all(&g);
	backend_free_all(&g);
	http_free(g.http);
	webhook_free_all(&g);     /* after http_free: dropped deliveries count down */
	if (g.wake_fd >= 0) {
		close(g.wake_fd);
		unlink(cfg.wake_socket);
	}
	db_close(g.db);
	config_free(&cfg);
	return rc;
}
