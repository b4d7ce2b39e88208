/* genqd: the dispatcher daemon's shared types. One process, one event loop
 * (main.c): it claims queued jobs for the backends it holds a lease on,
 * submits them, follows each attempt to its end, stores outputs, and
 * records every transition in the database. Claims and the ends of
 * attempts are committed by two threads of their own, each on its own
 * connection (committer.c), so the loop goes on meanwhile. Modules:
 *   main.c      arguments, signals, the loop and its timers
 *   backend.c   the backend table, backend leases, health
 *   claim.c     taking queued jobs (the claim transaction, in a thread)
 *   run.c       the attempts this genqd drives, in memory
 *   finish.c    ending an attempt: terminal states, retries, the ledger
 *   committer.c a thread with a connection of its own, for claim.c's and
 *               finish.c's transactions
 *   sweep.c     timers: cancel requests, timeouts, ttl expiry, job leases
 *   deps.c      `after`: waiting jobs released or failed; parent outputs
 *   retention.c deleting outputs older than the retention period
 *   recover.c   taking over attempts whose genqd went away, re-attaching
 *   outputs.c   fetching output files into the store
 *   comfydrv.c  the ComfyUI protocol driver (comfy.c: its pure parsing)
 *   comfyws.c   ComfyUI's /ws event streams: progress, early end notices
 *               (comfyevt.c: their messages; ws.c: the WebSocket client)
 *   http.c      libcurl multi wrapper; media.c, policy.c: pure helpers */
#ifndef GENQD_H
#define GENQD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "secure.h"
#include "store.h"

#define GQD_ID_MAX CONFIG_DAEMON_ID_MAX   /* identity: lease owner, claimed_by */
#define GQD_MSG_MAX 1024          /* error messages recorded on a job */
#define GQD_FAIL_LIMIT 3          /* consecutive failures that mark a backend down, */
#define GQD_FAIL_SPAN_US 2000000LL /* ... when they span at least this long */
#define GQD_ORPHANS_MAX 256       /* prompts to stop when a backend returns */

struct genq_config;
struct db;
struct http;
struct http_req;
struct genqd;
struct backend;
struct run;
struct fetch;
struct webhooks;
struct comfyws;
struct committer;
struct finishing;
struct claim;

/* Claims in flight at once (genqd.claimer). */
#define GQD_CLAIMERS 2

/* A backend type's protocol: the only code that differs between ComfyUI and
 * (later) OpenAI-style servers. Every function starts work and returns; the
 * work ends later, from an HTTP callback, in run_end / run_fail. */
struct proto {
	const char *type;                                  /* backends.type */
	/* Send r's input as a new prompt (r->input, r->prompt_id). */
	void (*submit)(struct genqd *g, struct run *r);
	/* Find out what became of an attempt taken over from the database. */
	void (*reattach)(struct genqd *g, struct run *r);
	/* r->next_at passed while no request of r is in flight: poll. */
	void (*poll)(struct genqd *g, struct run *r);
	/* Stop r on the backend (r->out already says why), then run_end. */
	void (*stop)(struct genqd *g, struct run *r);
	/* Check b's health; ends in backend_probe_done. */
	void (*probe)(struct genqd *g, struct backend *b);
	/* Best-effort removal of a prompt genq gave up on (no callback). */
	void (*forget)(struct genqd *g, struct backend *b, const char *prompt_id);
};

extern const struct proto comfy_proto;
extern const struct proto openai_proto;   /* openaidrv.c */

/* One row of the backends table as this genqd sees it. */
struct backend {
	struct backend *next;
	struct genqd *g;            /* the daemon, for callbacks */
	uint64_t id;
	char name[65];
	const struct proto *proto;
	char *url;                  /* base URL, owned */
	int max_running, prefetch;
	bool draining;
	bool healthy;               /* as stored in the table */
	char **queues;              /* queue names it serves, owned */
	size_t nqueues;

	bool leased;                /* this genqd drives it */
	int64_t lease_renew_at;     /* monotonic µs */
	bool lease_live_elsewhere;  /* another genqd holds a live lease */
	bool seen;                  /* still in the table at the last reload */
	int inflight;               /* live runs on it */
	int vacated;                /* of those, runs whose prompt the backend is
	                             * done with (fetching outputs, committing) */
	int64_t next_claim_at;      /* monotonic µs */
	bool claiming;              /* in the claim in flight (claim.c) */

	int fail_count;             /* consecutive failed requests */
	int64_t first_fail_at;      /* monotonic µs of the first of them */
	int64_t next_probe_at;
	struct http_req *probe_req;
	const char *probe_what;     /* the probed endpoint, for messages (static) */
	char *orphans[GQD_ORPHANS_MAX];  /* prompt ids abandoned while it was down */
	size_t norphans;
};

/* What ended an attempt. */
enum outcome_kind { OUTCOME_SUCCEEDED, OUTCOME_FAILED, OUTCOME_CANCELED };

/* One output file in the store. */
struct stored_output {
	char path[STORE_PATH_MAX];       /* relative to the store (store.h) */
	char content_type[128];
	int64_t bytes;
	char sha256[GQ_SHA256_HEX_LEN];
	char *text;                      /* a text output (kind 'text'), owned; NULL for files */
	size_t text_len;
};

struct outcome {
	enum outcome_kind kind;
	char code[32];                   /* failures: error code */
	char message[GQD_MSG_MAX];
	bool retryable;
	int64_t run_ms;                  /* backend's execution time; -1 unknown */
	struct stored_output *outputs;   /* owned */
	size_t noutputs;
};

enum run_state {
	RUN_ACTIVE,      /* the driver is submitting, tracking or re-attaching it */
	RUN_STOPPING,    /* a cancel or timeout is being carried out on the backend */
	RUN_FETCHING,    /* it succeeded; outputs are being stored */
	RUN_ENDED,       /* r->out is final; waiting for its transaction to commit */
	RUN_COMMITTING,  /* in the committer's hands: the loop must not change it */
	RUN_DEAD,        /* done with; freed by run_reap */
};

/* One attempt this genqd drives. */
struct run {
	struct run *next, *prev;
	struct genqd *g;                 /* the daemon, for callbacks */
	struct backend *backend;
	uint64_t seq;                    /* jobs.seq */
	char job_id[GQ_UUID_LEN];
	char prompt_id[GQ_UUID_LEN];
	char queue[33];
	int attempt;                     /* 1-based, as in job_attempts */
	int timeout_s;
	int64_t started_mono;            /* when the attempt began (monotonic µs) */
	char *input;                     /* the workflow, until submitted; owned */
	size_t input_len;
	bool deps_ready;                 /* deps.c replaced the parent output references */

	enum run_state state;
	int phase;                       /* the driver's step within RUN_ACTIVE */
	bool submitting;                 /* the submit request is in flight */
	bool stop_wanted;                /* stop as soon as the submit returns */
	bool cancel_seen;                /* cancel already acted on */
	bool submit_noted;               /* accepted: note it at the next flush */
	bool progress_noted;             /* progress changed: write it at the next flush */
	bool no_webhook;                 /* the job has no webhook (as claimed): no outbox lookups */
	bool vacated;                    /* its backend slot is free again (run_vacate) */
	struct http_req *req;            /* the request in flight, or NULL */
	int64_t next_at;                 /* when to poll (or retry a commit) */
	int64_t verify_at;               /* when to check the backend still has it */
	int tries;                       /* retries of the current step */
	struct fetch *fetch;             /* outputs.c's state while fetching */
	double progress;                 /* last progress written this attempt */
	int64_t progress_at;             /* earliest next progress note (monotonic µs) */
	int64_t progress_write_at;       /* a noted progress is written from then on */
	int end_hints;                   /* the backend's event stream said it ended:
	                                  * quick /history re-polls left */
	struct outcome out;
};

struct genqd {
	struct genq_config *cfg;
	const char *config_path;
	struct db *db;                   /* NULL until the first connection */
	bool db_down;                    /* lost; the loop reconnects */
	struct http *http;
	char id[GQD_ID_MAX + 1];
	char actor[GQD_ID_MAX + 8];      /* "genqd:<id>" */
	int wake_fd;

	struct backend *backends;
	struct run *runs;
	size_t nruns;                    /* live runs (not RUN_DEAD) */

	int64_t db_retry_at;             /* next reconnect try (monotonic µs) */
	int db_backoff_ms;
	int64_t job_lease_at;            /* next renewal of job leases */
	int64_t job_lease_ok;            /* when the last renewal succeeded */
	int64_t ttl_at;                  /* next ttl expiry sweep */
	int64_t retention_at;            /* next output retention pass */
	bool deps_due;                   /* a job ended: waiting children may move */
	int64_t deps_at, deps_soonest;   /* next dependency pass; earliest when due */
	bool recover_now;                /* a lease was just taken: look for orphans */
	struct webhooks *webhooks;       /* webhook.c's state, NULL until first used */
	struct comfyws *comfyws;         /* comfyws.c's event streams, NULL until first used */
	struct committer *committer;     /* commits finish.c's batches (committer.h) */
	/* Claims run in threads of their own, one each at a time: while one
	 * is in the database, backends that it does not serve can claim on
	 * the other (claim.c). */
	struct committer *claimer[GQD_CLAIMERS];
	struct claim *claim[GQD_CLAIMERS]; /* each one's claim in flight, or NULL */
	bool claim_hold;                 /* recovery waits for them: no new claim */
	struct finishing *finishing;     /* finish.c's batch, NULL until first used */
	bool stopping;                   /* SIGTERM: no new work */
	int64_t stop_deadline;
};

/* ---- main.c ---- */
/* Is the database there to be used? Every module asks before each use. */
bool gqd_db_ready(const struct genqd *g);
/* Record a failed database call (rc a db status, what names the step): a
 * lost connection parks the database until the loop reconnects. */
void gqd_db_failed(struct genqd *g, int rc, const char *what);

/* ---- backend.c ---- */
/* Read the backends table, take or renew leases. */
void backend_reload(struct genqd *g);
/* Renew the leases that are due. */
void backend_leases(struct genqd *g, int64_t now);
/* Start the health probes that are due. */
void backend_probes(struct genqd *g, int64_t now);
/* A request to b worked / failed (counts towards marking it down). */
void backend_ok(struct genqd *g, struct backend *b);
void backend_failed(struct genqd *g, struct backend *b, const char *why);
/* Probe b with GET url (and the header line auth, unless NULL), healthy on
 * 200 with a JSON object; what names the endpoint in messages (a string
 * literal). Ends in backend_probe_done. */
void backend_probe_json(struct genqd *g, struct backend *b, const char *url, const char *what,
    const char *auth);
/* The end of a probe started by proto->probe. */
void backend_probe_done(struct genqd *g, struct backend *b, bool ok, const char *why);
/* Remember a prompt to remove from b once b is reachable again. */
void backend_add_orphan(struct backend *b, const char *prompt_id);
/* Can b take another job now? */
bool backend_has_room(const struct genqd *g, const struct backend *b);
/* Prompts of b's live runs that b still holds, queued or running: what
 * max_running + prefetch bound. */
static inline int
backend_busy(const struct backend *b)
{
	return b->inflight - b->vacated;
}
/* Give every lease back (shutdown). */
void backend_release_all(struct genqd *g);
void backend_free_all(struct genqd *g);

/* ---- claim.c ---- */
/* Take up the claim in flight when it is back (launch its jobs), then
 * post one for every backend with room whose claim time has come. Call
 * every turn, stopping or not. */
void claim_due(struct genqd *g, int64_t now);
/* Is a claim in flight? */
bool claim_pending(const struct genqd *g);
/* Shutdown: wait for the claim in flight; its jobs stay running, owned by
 * this genqd, for finish_hand_back. */
void claim_drain(struct genqd *g);
/* Make every backend claim at the next turn of the loop. */
void claim_soon(struct genqd *g);
/* The same for the backends that serve queue (a job became claimable
 * there): idle backends of other queues go on waiting. */
void claim_soon_for(struct genqd *g, const char *queue);
/* When the next claim is due (monotonic µs; INT64_MAX when none). */
int64_t claim_next_deadline(const struct genqd *g);

/* ---- run.c ---- */
/* A new run on b, linked into g->runs; NULL when out of memory. */
struct run *run_new(struct genqd *g, struct backend *b);
/* Mark r done: its request is canceled, its slot freed; memory goes at
 * the next run_reap. */
void run_release(struct genqd *g, struct run *r);
/* The backend is done with r's prompt (it ended there, or never will run):
 * its slot goes to the next job while r fetches outputs and commits. */
void run_vacate(struct genqd *g, struct run *r);
/* Free released runs. Call only from the loop, never from a callback. */
void run_reap(struct genqd *g);
/* The backend accepted r's prompt: note it on the attempt (best effort). */
void run_mark_submitted(struct genqd *g, struct run *r);
/* Does r's job lease surely still hold (renewed, or claimed, less than
 * lease_s ago with a margin)? A genqd that was stopped longer than that
 * (SIGSTOP, a stalled VM) may have lost the job to another genqd, so it
 * must not send it to a backend. */
bool run_lease_fresh(const struct genqd *g, const struct run *r);
/* Drop a run whose lease may be gone without touching its row: recovery
 * (this genqd's or another's) decides what became of it. */
void run_abandon(struct genqd *g, struct run *r);
/* A request of r's to its backend failed: log it and count it against the
 * backend. False when that ended r (the backend went down and took its
 * runs with it). */
struct http_result;
bool run_request_failed(struct genqd *g, struct run *r, const struct http_result *res,
    const char *what);
/* The live run for job seq, or NULL. */
struct run *run_find(struct genqd *g, uint64_t seq);
/* The backend reports r's progress (0..1): noted for the job, only forward
 * within the attempt and at most once a second, and written with its
 * progress webhook by the next finish_flush; best effort (a later report,
 * or the job's end, says it again). */
void run_progress(struct genqd *g, struct run *r, double value);
/* A noted progress, as copied for the committer's thread. */
struct progress_note {
	uint64_t seq;
	char prompt_id[GQ_UUID_LEN];
	double value;
	bool no_webhook;
};
/* Write a noted progress inside the caller's transaction. */
int run_progress_write(struct db *db, const struct progress_note *p);
/* Poll the runs whose time has come; retry pending commits. */
void run_tick(struct genqd *g, int64_t now);
/* Earliest next_at of the runs (INT64_MAX when none). */
int64_t run_next_deadline(const struct genqd *g);

#define run_log(lvl, event, r, fmt, ...) \
	log_##lvl(event, "job=%s queue=%s backend=%s attempt=%d prompt_id=%s" fmt, \
	    (r)->job_id, (r)->queue, (r)->backend->name, (r)->attempt, \
	    (r)->prompt_id, ##__VA_ARGS__)

/* ---- finish.c ---- */
/* r's attempt is over with r->out filled in: record it (or retry the
 * commit later if the database is away). */
void run_end(struct genqd *g, struct run *r);
/* Shorthand: end r as failed with code and a formatted message. */
void run_fail(struct genqd *g, struct run *r, const char *code, bool retryable,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Take the committer's results (runs released, or their commit deferred),
 * then hand it the attempts that ended (RUN_ENDED, due), the pending submit
 * marks and progress, many in one transaction; the loop calls it every
 * turn, before claiming. */
void finish_flush(struct genqd *g, int64_t now);
/* When finish_flush next has something to do (monotonic µs). */
int64_t finish_next_deadline(const struct genqd *g);
/* Shutdown: wait for the committer and commit what ended since. */
void finish_drain(struct genqd *g);
void finish_free(struct genqd *g);
/* Hand every running job of this genqd back (claimed_by NULL, lease over),
 * all of them or only those on backend_id (when non-zero). */
int finish_hand_back(struct genqd *g, uint64_t backend_id);

/* ---- sweep.c ---- */
/* Cancel requests and timeouts of runs; ttl expiry; job lease renewal. */
void sweep_tick(struct genqd *g, int64_t now);
/* Stop r on its backend with outcome already in r->out. */
void sweep_stop(struct genqd *g, struct run *r);

/* ---- deps.c ---- */
/* Release waiting jobs whose parents succeeded; fail those with a parent
 * that did not (dependency_failed, hold released), cascading down chains.
 * Call every loop turn: it runs every second, and soon after g->deps_due. */
void deps_tick(struct genqd *g, int64_t now);
typedef void (*deps_submit_fn)(struct genqd *g, struct run *r);
/* Before r's prompt goes out: false when r->input needs nothing (submit
 * now). true when deps.c took r over: it replaces the parent output
 * references in r->input (text outputs by their text; files uploaded to a
 * ComfyUI backend, or inline as data URLs for an OpenAI-compatible one) and
 * then calls submit(g, r) again, or ends r with run_fail. */
bool deps_prepare(struct genqd *g, struct run *r, deps_submit_fn submit);

/* ---- retention.c ---- */
/* Delete output files older than the retention period, in bounded batches,
 * and mark their rows deleted. */
void retention_tick(struct genqd *g, int64_t now);

/* ---- recover.c ---- */
/* Take over running jobs of held backends whose genqd is gone. */
void recover_tick(struct genqd *g);

/* ---- webhook.c ---- */
/* Send the webhook messages that are due (SPEC §7). */
void webhook_tick(struct genqd *g, int64_t now);
/* When webhook_tick next wants to run (monotonic µs). */
int64_t webhook_next_deadline(const struct genqd *g);
void webhook_free_all(struct genqd *g);

/* ---- outputs.c ---- */
/* Start storing r's nfiles outputs; urls[i] and names[i] (the backend's
 * file name, for the extension) are copied. Ends in run_end or run_fail. */
void outputs_fetch(struct genqd *g, struct run *r, char *const *urls,
    char *const *names, size_t nfiles);
/* Continue a fetch that waits for a retry (r->next_at passed). */
void outputs_poll(struct genqd *g, struct run *r);
/* Drop r's fetch state (on release). */
void outputs_abort(struct genqd *g, struct run *r);
/* Store len bytes held in memory (a decoded image) as r's output o, the
 * file "<job id>/<index>.<ext>" in the store, fsynced, with its size and
 * SHA-256, as outputs_fetch does for downloads. 0, or -1 with errno set. */
int outputs_store_bytes(struct genqd *g, struct run *r, size_t index, const void *data,
    size_t len, const char *ext, struct stored_output *o);

#endif
