/* genqctl: the operator's command-line tool (SPEC §11). Shared types of the
 * ctl/ folder: the command tree, the session (configuration and database
 * connection, opened lazily), argument helpers and table output.
 *
 * Conventions: a command handler validates all of its arguments before it
 * touches the configuration or the database, prints exactly one line
 * "genqctl: <message>" on stderr when it fails (ctl_fail), and returns one of
 * enum ctl_status. Output meant for people goes to stdout. */
#ifndef GENQ_CTL_H
#define GENQ_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"

struct db;

/* What a handler returns; main turns CTL_DONE into exit status 0. */
enum ctl_status {
	CTL_OK = 0,
	CTL_FAIL = 1,     /* the error line has been printed */
	CTL_DONE = 2,     /* --help was printed: stop, successfully */
};

/* The actor written into job_events and ledger rows. */
#define CTL_ACTOR "genqctl"

/* One session: what --config said, and what was opened from it. */
struct ctl {
	const char *config_path;     /* --config, or NULL for $GENQ_CONFIG */
	struct genq_config cfg;
	bool cfg_loaded;
	struct db *db;               /* owned; closed by ctl_close */
};

struct ctl_cmd;

/* A leaf handler: argv[0] is the command's own name, options follow. */
typedef int (*ctl_run_fn)(struct ctl *ctl, const struct ctl_cmd *cmd,
    int argc, char **argv);

/* A node of the command tree: a leaf has run, a noun has subs. */
struct ctl_cmd {
	const char *name;            /* "add" */
	ctl_run_fn run;
	const char *usage;           /* "user add NAME --tier TIER" */
	const char *summary;         /* one line */
	const char *help;            /* option lines for --help, or NULL */
	const struct ctl_cmd *subs;
	size_t nsubs;
};

#define CTL_NSUBS(a) (sizeof (a) / sizeof (a)[0])

/* The top of the tree (genqctl itself), whose subs are the nouns. */
const struct ctl_cmd *ctl_tree(void);

/* The nouns, one file each. */
extern const struct ctl_cmd migrate_cmd, user_cmd, key_cmd, credits_cmd,
    tier_cmd, queue_cmd, backend_cmd, job_cmd, stats_cmd;

/* ctl.c: run the whole tool on main's arguments; returns the exit status. */
int ctl_main(int argc, char **argv);

/* Resolve argv[0] against cmd's subcommands and run the leaf; handles
 * --help and a missing or unknown subcommand. Returns enum ctl_status. */
int ctl_dispatch(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv);

/* Print cmd's usage, summary and help on stdout; returns CTL_DONE. */
int ctl_help(const struct ctl_cmd *cmd);

/* The session's database, connecting on first use (config from --config or
 * $GENQ_CONFIG). NULL after printing the error. */
struct db *ctl_db(struct ctl *ctl);

/* The session's configuration, loading it on first use; NULL after printing. */
const struct genq_config *ctl_config(struct ctl *ctl);

/* Fill one table row's cells from the current row of st; buf gives each
 * cell 32 bytes of scratch for formatted numbers. */
struct db_stmt;
typedef void (*ctl_row_fn)(struct db_stmt *st, const char **cell, char (*buf)[32]);

/* Execute st (parameters already bound) and print its rows as a table with
 * the given header (see tbl_init). CTL_OK or CTL_FAIL. */
int ctl_print_rows(struct db *db, struct db_stmt *st, size_t ncols,
    const char *const *header, ctl_row_fn fn);

/* Run fn in a transaction on the session's database. A positive return
 * from fn is a refusal that why (filled in by fn) explains. CTL_OK, or
 * CTL_FAIL with the error line printed. */
int ctl_txn(struct ctl *ctl, db_txn_fn fn, void *arg, const char *why);

/* The whole body of a list verb that takes no arguments: run sql (a
 * literal) and print its rows under header. Returns a CTL_ status. */
int ctl_list_verb(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
    const char *sql, size_t ncols, const char *const *header, ctl_row_fn row);

/* Release what the session opened. */
void ctl_close(struct ctl *ctl);

/* args.c: the error line. Prints "genqctl: <message>" and returns CTL_FAIL. */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The database's last error as the error line; returns CTL_FAIL. */
int ctl_fail_db(struct db *db, int status);

/* Every option table ends its list with these two entries. */
#define CTL_OPT_HELP { "help", no_argument, NULL, 'h' }
#define CTL_OPT_END { NULL, 0, NULL, 0 }

/* ctl_getopt's answers besides an option's val and -1 (no more options). */
#define CTL_GETOPT_HELP (-2)    /* help was printed */
#define CTL_GETOPT_ERROR (-3)   /* the error line was printed */

/* getopt_long over a command's arguments (options may follow operands; "--"
 * ends them). The caller sets optind = 0 before the first call (ctl_dispatch
 * does). Unknown options and missing values print the error line. */
int ctl_getopt(const struct ctl_cmd *cmd, int argc, char **argv, const struct option *opts);

/* What a handler returns when ctl_getopt answered help or error. */
int ctl_getopt_status(int c);

/* Parse only --help, then require min..max operands (at argv + optind).
 * Returns CTL_OK, CTL_DONE or CTL_FAIL. */
int ctl_args(const struct ctl_cmd *cmd, int argc, char **argv, int min, int max);

/* Require min..max operands left after option parsing; CTL_OK or CTL_FAIL
 * (with the usage as the error line). */
int ctl_operands(const struct ctl_cmd *cmd, int argc, int min, int max);

/* Names. A user: 1..64 of [A-Za-z0-9_.@-]; a tier, queue or backend: 1..32
 * (backend 64) of [A-Za-z0-9_.-]. The check functions print the error. */
#define CTL_USER_MAX 64
#define CTL_TIER_MAX 32
#define CTL_QUEUE_MAX 32
#define CTL_BACKEND_MAX 64
bool ctl_name_ok(const char *s, size_t max, const char *extra);
int ctl_check_user(const char *s);
int ctl_check_tier(const char *s);
int ctl_check_queue(const char *s);
int ctl_check_backend(const char *s);

/* A decimal integer in lo..hi for what (an option name, for the error). */
int ctl_parse_int(const char *what, const char *s, long lo, long hi, long *out);

/* A credit amount ("10", "2.5") in micro-credits; CTL_OK or CTL_FAIL. */
int ctl_parse_credits(const char *what, const char *s, int64_t *micro);

/* A job id: a canonical UUID. */
int ctl_check_job_id(const char *s);

/* Lookups shared by several nouns (users.c, tiers.c, queues.c). Each returns
 * 1 found, 0 not found, or a negative db status. */
int users_find(struct db *db, const char *name, uint64_t *id);
/* Whether sql (one string parameter) finds a row: 1, 0, or a negative
 * db status. */
int ctl_row_exists(struct db *db, const char *sql, const char *param);

int tiers_exists(struct db *db, const char *name);
int queues_exists(struct db *db, const char *name);

/* migrate.c: one statement of a migration file. */
struct mig_stmt {
	char *sql;                   /* owned, without its ';' */
	int line;                    /* where it starts, 1-based */
};

/* Split a migration file's text into statements: each ends with ';' at the
 * end of a line; blank lines and lines starting with "--" are dropped. On
 * success the caller owns *out (mig_free). -1 with a message in err when a
 * statement is left without its ';' or the text holds a NUL byte. */
int mig_split(const char *text, size_t len, struct mig_stmt **out, size_t *n,
    char *err, size_t errlen);
void mig_free(struct mig_stmt *stmts, size_t n);

/* The version of a migration file named "NNN_name.sql"; -1 if not such a name. */
int mig_parse_name(const char *file, int *version);

/* backends.c: check url is an absolute http(s) URL without query or
 * fragment, and give it back normalized without a trailing '/' (so genqd can
 * append "/prompt"). The caller frees *out. CTL_OK or CTL_FAIL (printed). */
int backends_check_url(const char *url, char **out);

/* table.c: aligned text tables. Rows are copied in; print once, then free. */
#define TBL_MAX_COLS 16
struct tbl {
	size_t ncols;
	size_t nrows, cap;
	char **cells;                /* nrows * ncols, row 0 is the header */
	size_t width[TBL_MAX_COLS];
	bool right[TBL_MAX_COLS];    /* right-align (numbers) */
};

/* Start a table; header is ncols names. A name starting with '>' is
 * right-aligned (the '>' is not printed). 0, or -1 if ncols is too big. */
int tbl_init(struct tbl *t, size_t ncols, const char *const *header);

/* Append one row of ncols cells (NULL prints as "-"). 0, or -1 out of memory. */
int tbl_add(struct tbl *t, const char *const *cells);

/* Write the table to stdout. */
void tbl_print(const struct tbl *t);
void tbl_free(struct tbl *t);

/* Helpers for cells built from numbers: format into a caller's buffer. */
const char *tbl_i64(char buf[32], int64_t v);
const char *tbl_credits(char buf[32], int64_t micro);
/* A DATETIME(6) column's text shortened to seconds ("2026-01-02 03:04:05"). */
const char *tbl_time(char buf[32], const char *sqltime);

#endif
