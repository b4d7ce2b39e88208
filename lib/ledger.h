/* ledger: the only way credits change. Each call runs inside the caller's
 * open transaction (the one that changes the job state the credits belong
 * to), moves users.balance and appends one ledger row with the balance after. */
#ifndef GENQ_LEDGER_H
#define GENQ_LEDGER_H

#include <stddef.h>
#include <stdint.h>

struct db;

#define GQ_MICRO ((int64_t)1000000)     /* micro-credits per credit */

/* Returned (positive) when a debit would take the balance below zero. */
#define LEDGER_INSUFFICIENT 1

/* kind is one of "grant", "hold", "charge", "release", "adjust"; amount is
 * signed (holds and charges negative). job_seq 0 means no job. Returns
 * DB_OK, LEDGER_INSUFFICIENT (nothing written), or a negative db status. */
int ledger_apply(struct db *db, uint64_t user_id, uint64_t job_seq,
    const char *kind, int64_t amount, const char *actor, const char *note);

/* One job of ledger_settle_jobs. 0 <= charge <= held. */
struct ledger_settlement {
	uint64_t job_seq;
	int64_t held, charge;
};

/* The ends of n successful jobs of one user: the rows two ledger_apply
 * calls per job would write, in order (each job's "release" of what it
 * held, when it held something, then its "charge", when there is one),
 * with one balance read under the user row's lock, at most one balance
 * move and one multi-row insert per 64 rows. DB_OK or a negative db
 * status. */
int ledger_settle_jobs(struct db *db, uint64_t user_id, const struct ledger_settlement *v,
    size_t n, const char *actor, const char *release_note, const char *charge_note);

/* Parse "12", "0.5", "3.000001" credits into micro-credits; -1 if malformed,
 * negative, more than 6 decimals, or too large. */
int ledger_parse_credits(const char *s, int64_t *micro);

/* Format micro-credits as a decimal string without trailing zeros ("2.5"). */
void ledger_format_credits(char buf[32], int64_t micro);

#endif
