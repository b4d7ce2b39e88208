/* deps: `after` dependencies between jobs (SPEC §2, §4), the parts shared
 * by the handler (admission), genqd (resolution, parent outputs) and the
 * job object (its `after` list).
 *
 * A child job names up to DEPS_MAX parents, which must be its owner's own
 * jobs. It waits in 'waiting' until every parent succeeded, then becomes
 * 'queued'; when a parent fails, is canceled or expires, it ends 'failed'
 * with code dependency_failed and its hold released. The rows of job_deps
 * and the jobs' statuses are the whole state (sql/004_deps.sql).
 *
 * Parent outputs in the child's input: a JSON string value that is exactly
 * "genq:after/<i>/outputs/<n>" (i: the parent's place in `after`, n: its
 * output index, both decimal without leading zeros) is replaced by genqd
 * before the prompt goes to the backend: for a file output, by the name
 * the backend gave the uploaded file (ComfyUI: POST /upload/image, so a
 * LoadImage node can read it); for a text output, by the text itself. */
#ifndef GENQ_DEPS_H
#define GENQ_DEPS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

#define DEPS_MAX 16                  /* parents of one job */
#define DEPS_REFS_MAX 64             /* output references in one input */
#define DEPS_OUTPUT_MAX 9999         /* highest n in a reference */
#define DEPS_REF_PREFIX "genq:after/"

/* s (len bytes) as a reference: 1 with *parent and *output set; 0 when s
 * does not start with DEPS_REF_PREFIX (an ordinary string); -1 when it does
 * but is not a well-formed reference. */
int deps_ref_parse(const char *s, size_t len, unsigned *parent, unsigned *output);

/* Called for every string value of an input that starts with the prefix:
 * rc is deps_ref_parse's 1 or -1. Return 0 to go on, non-zero to stop. */
typedef int (*deps_ref_fn)(struct json_object *str, int rc, unsigned parent,
    unsigned output, void *arg);

/* Walk every string value under root (object members and array items,
 * depth-first, keys excluded). Returns 0, or the first non-zero fn result. */
int deps_refs_walk(struct json_object *root, deps_ref_fn fn, void *arg);

/* The parents of a new job, as admission found them. */
struct deps_parents {
	size_t n;
	uint64_t seq[DEPS_MAX];
	uint32_t unknown;                /* bit i: ids[i] is not the user's job */
	bool wait;                       /* a parent has not succeeded (yet) */
};

/* Look up ids[0..n) (n <= DEPS_MAX, checked UUIDs) among user_id's jobs,
 * inside the admission transaction. Ids that are unknown or another user's
 * set their bit in p->unknown (the caller answers both the same way).
 * Returns DB_OK or a negative db status. */
int deps_lookup(struct db *db, uint64_t user_id, const char *const *ids, size_t n,
    struct deps_parents *p);

/* The status a job with parents p starts in once it needs no approval:
 * "waiting" while a parent has not succeeded, else "queued". A parent that
 * already failed still gives "waiting": genqd ends the job as
 * dependency_failed at its next look, the same path as a later failure. */
const char *deps_initial_status(const struct deps_parents *p);

/* Record child's parents (same transaction as its insert). DB_OK or < 0. */
int deps_link(struct db *db, uint64_t child, const struct deps_parents *p);

/* For an approval: 1 when job seq has a parent that has not succeeded (it
 * goes to 'waiting'), 0 when not (to 'queued'), < 0 a db status. */
int deps_pending(struct db *db, uint64_t seq);

#endif
