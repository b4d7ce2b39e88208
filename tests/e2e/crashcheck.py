"""Invariants the crash-safety tests check after the dust settles (SPEC §4,
§5, §6): every job in one correct state, no prompt submitted twice, none run
twice on a GPU, attempts and events consistent, every credit accounted for.

The simulators' own logs are the witness for what reached a backend: each
accepted POST /prompt logs `prompt <id> accepted`, each finished prompt
`prompt <id> succeeded|failed|interrupted`. Logs are appended across
simulator restarts, so nothing a crashed simulator saw is lost."""

import collections
import os
import re

from harness import TERMINAL, request, sha256_file

_SIM_LINE = re.compile(r" prompt ([0-9a-f-]{36}) (accepted|succeeded|failed|interrupted)\b")


def sim_prompts(stack):
    """Per simulator log: Counter of accepted prompt ids, and the set of
    prompt ids that ran to success."""
    accepted = collections.Counter()
    succeeded = collections.Counter()
    for i in range(stack.nbackends):
        path = os.path.join(stack.logdir, f"sim{i + 1}.log")
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            for line in f:
                m = _SIM_LINE.search(line)
                if m is None:
                    continue
                if m.group(2) == "accepted":
                    accepted[m.group(1)] += 1
                elif m.group(2) == "succeeded":
                    succeeded[m.group(1)] += 1
    return accepted, succeeded


def check_all(tc, key, job_ids, allow_failed_codes=(), once=True, allow_failed_in=None):
    """Check every invariant over the jobs job_ids (all expected terminal).
    A job may end failed only with a code in allow_failed_codes (or, for a
    job of queue Q, in allow_failed_in[Q]) after using all its attempts;
    otherwise every job must have succeeded. once: no job
    ran to success on a backend more than once (false where a backend forgot
    its history, so a finished prompt was rightly run again). Returns a
    summary dict (for the test's log line)."""
    stack = tc.stack
    jobs = {}
    for jid in job_ids:
        r = request(f"{stack.url}/v1/jobs/{jid}", key=key)
        tc.assertEqual(r.status, 200, r.body)
        jobs[jid] = r.json
    not_done = [(j["id"], j["status"]) for j in jobs.values() if j["status"] not in TERMINAL]
    tc.assertEqual(not_done, [], "jobs not terminal")

    ids_sql = ",".join(f"'{jid}'" for jid in job_ids)
    seq_of = {jid: int(seq) for jid, seq in stack.query(
        f"SELECT id, seq FROM jobs WHERE id IN ({ids_sql})")}
    tc.assertEqual(len(seq_of), len(job_ids))
    seqs_sql = ",".join(str(s) for s in seq_of.values())

    attempts = collections.defaultdict(list)
    for seq, n, prompt_id, outcome, fin in stack.query(
            "SELECT job_seq, attempt, prompt_id, COALESCE(outcome, 'NULL'), "
            f"finished_at IS NOT NULL FROM job_attempts WHERE job_seq IN ({seqs_sql}) "
            "ORDER BY job_seq, attempt"):
        attempts[int(seq)].append((int(n), prompt_id, outcome, fin == "1"))
    ledger = collections.defaultdict(list)
    for seq, kind, amount in stack.query(
            f"SELECT job_seq, kind, amount FROM ledger WHERE job_seq IN ({seqs_sql}) ORDER BY id"):
        ledger[int(seq)].append((kind, int(amount)))
    events = collections.defaultdict(list)
    for seq, frm, to in stack.query(
            "SELECT job_seq, COALESCE(from_status, 'NULL'), to_status FROM job_events "
            f"WHERE job_seq IN ({seqs_sql}) ORDER BY id"):
        events[int(seq)].append((frm, to))
    costs = {int(seq): (int(h), int(c), int(rf), st) for seq, h, c, rf, st in stack.query(
        "SELECT seq, cost_held, cost_charged, cost_refunded, status FROM jobs "
        f"WHERE seq IN ({seqs_sql})")}

    paths = {(int(seq), int(idx)): path for seq, idx, path in stack.query(
        f"SELECT job_seq, idx, path FROM job_outputs WHERE job_seq IN ({seqs_sql})")}

    accepted, sim_succeeded = sim_prompts(stack)
    all_prompts = {a[1] for rows in attempts.values() for a in rows}
    twice = {p: n for p, n in accepted.items() if n > 1}
    tc.assertEqual(twice, {}, "prompt ids submitted more than once to the backends")
    stray = set(accepted) - all_prompts
    # Other modules' jobs are not in job_ids; only this test's prompts count.
    known = {p for (p,) in stack.query("SELECT prompt_id FROM job_attempts")}
    tc.assertEqual(stray - known, set(), "prompts on the backends that genq never recorded")

    summary = collections.Counter()
    for jid, job in jobs.items():
        seq = seq_of[jid]
        rows = attempts[seq]
        where = f"job {jid} ({job['status']}, attempts {rows}, events {events[seq]})"
        summary[job["status"]] += 1
        summary["attempts"] += len(rows)
        # Attempts: numbered 1..n, as many as the job counts, all finished.
        tc.assertEqual([a[0] for a in rows], list(range(1, len(rows) + 1)), where)
        tc.assertEqual(job["attempts"], len(rows), where)
        tc.assertTrue(all(a[3] for a in rows), "unfinished attempt of a terminal " + where)
        tc.assertTrue(all(a[2] == "retry" for a in rows[:-1]), where)
        # Events: one unbroken chain from creation to the final status.
        chain = events[seq]
        tc.assertTrue(chain and chain[0][0] == "NULL", where)
        for prev, cur in zip(chain, chain[1:]):
            tc.assertEqual(prev[1], cur[0], "broken event chain: " + where)
        tc.assertEqual(chain[-1][1], job["status"], where)
        tc.assertEqual(sum(1 for e in chain if e[1] == "running"), len(rows), where)
        # Never run twice on a GPU: at most one of its prompts succeeded on
        # a backend, and for a succeeded job it is its last attempt's. An
        # OpenAI-style server keeps no record to check against (its request
        # dies with the connection of a killed genqd).
        comfy = job["queue"] != "llm"
        ran = [a[1] for a in rows if sim_succeeded[a[1]] > 0]
        if once and comfy:
            tc.assertLessEqual(len(ran), 1, "ran more than once on a GPU: " + where)
        # Credits: one hold, one release, and a charge only on success.
        held, charged, refunded, _ = costs[seq]
        kinds = collections.Counter(k for k, _ in ledger[seq])
        tc.assertEqual(kinds["hold"], 1, where + f" ledger {ledger[seq]}")
        tc.assertEqual(kinds["release"], 1, where + f" ledger {ledger[seq]}")
        tc.assertEqual(held, charged + refunded, where)
        tc.assertEqual(sum(a for k, a in ledger[seq] if k == "charge"), -charged, where)
        # No half-written output left behind by a killed genqd.
        shard = stack.path("outputs", jid[:2])       # daemon/store.h
        temps = [n for n in os.listdir(shard)
                 if n.startswith(f".{jid}.")] if os.path.isdir(shard) else []
        tc.assertEqual(temps, [], f"{where}: temporary files in {shard}")
        if job["status"] == "succeeded":
            tc.assertEqual(rows[-1][2], "succeeded", where)
            if comfy:
                tc.assertEqual(ran[-1:], [rows[-1][1]],
                               "success not confirmed by the backend: " + where)
            tc.assertEqual(kinds["charge"], 1 if charged > 0 else 0, where)
            tc.assertTrue(job["outputs"], where)
            for out in job["outputs"]:
                if "text" in out:
                    tc.assertTrue(out["text"], where)
                    continue
                path = paths.get((seq, int(out["index"])))
                tc.assertIsNotNone(path, f"{where}: no output row {out['index']}")
                full = stack.path("outputs", path)
                tc.assertTrue(os.path.isfile(full), f"{where}: missing {full}")
                tc.assertEqual(sha256_file(full), out["sha256"], where)
                tc.assertEqual(os.path.getsize(full), out["bytes"], where)
        else:
            tc.assertEqual(kinds["charge"], 0, where)
            tc.assertEqual(job["status"], "failed", where)
            allowed = tuple(allow_failed_codes) + tuple((allow_failed_in or {}).get(job["queue"], ()))
            tc.assertIn(job["error"]["code"], allowed, where)
            tc.assertEqual(job["attempts"], job["max_attempts"], where)
    return dict(summary)
