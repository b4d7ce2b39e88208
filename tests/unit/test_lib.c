/* Unit tests for libgenq's self-contained modules. */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "gqtime.h"
#include "jsonutil.h"
#include "ledger.h"
#include "sqlrows.h"
#include "log.h"
#include "secure.h"
#include "wake.h"

static char *
write_temp(const char *text)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof path, "/tmp/genq-test-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(config_reads_values_over_defaults)
{
	struct genq_config cfg;
	char err[256];
	char *path = write_temp("[database]\nsocket = /tmp/x.sock\nport = 3307\n"
	    "[http]\nmax_body_bytes = 2048\n");

	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), 0);
	ck_assert_str_eq(cfg.db_socket, "/tmp/x.sock");
	ck_assert_int_eq(cfg.db_port, 3307);
	ck_assert_int_eq(cfg.max_body_bytes, 2048);
	ck_assert_str_eq(cfg.db_name, "genq");             /* default kept */
	ck_assert_int_eq(cfg.lease_s, 15);
	config_free(&cfg);
	unlink(path);
}
END_TEST

START_TEST(config_reads_backend_keys_and_refuses_unsafe_ones)
{
	struct genq_config cfg;
	char err[256];
	char *path = write_temp("[backend_keys]\nvllm-1 = sk-abc.123\nllama = k2\n");

	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), 0);
	ck_assert_str_eq(config_backend_key(&cfg, "vllm-1"), "sk-abc.123");
	ck_assert_str_eq(config_backend_key(&cfg, "llama"), "k2");
	ck_assert_ptr_null(config_backend_key(&cfg, "other"));
	config_free(&cfg);
	ck_assert_ptr_null(config_backend_key(&cfg, "llama"));
	unlink(path);

	/* A space (or anything else outside visible ASCII) could end the
	 * header line the token is sent in. */
	path = write_temp("[backend_keys]\nvllm = sk a\n");
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "[backend_keys] vllm"));
	config_free(&cfg);
	unlink(path);

	path = write_temp("[backend_keys]\nvllm = a\nvllm = b\n");
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "given twice"));
	config_free(&cfg);
	unlink(path);

	path = write_temp("[backend_keys]\nno/slash = a\n");
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a backend name"));
	config_free(&cfg);
	unlink(path);
}
END_TEST

START_TEST(config_refuses_unknown_keys_and_bad_numbers)
{
	struct genq_config cfg;
	char err[256];
	char *path = write_temp("[database]\nsokcet = /tmp/x.sock\n");

	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown setting [database] sokcet"));
	config_free(&cfg);
	unlink(path);

	path = write_temp("[daemon]\nlease_s = 0\n");
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "lease_s"));
	config_free(&cfg);
	unlink(path);

	path = write_temp("[daemon]\nlease_s = 12x\n");
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	config_free(&cfg);
	unlink(path);

	ck_assert_int_eq(config_load(&cfg, "/nonexistent/genq.conf", err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	config_free(&cfg);
}
END_TEST

/* A genqd id lands in fixed-width ASCII columns (jobs.claimed_by): one
 * that would not fit, or would not be stored as written, is refused
 * rather than cut short, where two daemons could end up with one name. */
START_TEST(config_refuses_daemon_ids_the_schema_cannot_hold)
{
	struct genq_config cfg;
	char err[256], text[256];
	char *path;

	snprintf(text, sizeof text, "[daemon]\nid = %0*d\n", CONFIG_DAEMON_ID_MAX, 7);
	path = write_temp(text);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), 0);
	ck_assert_uint_eq(strlen(cfg.daemon_id), CONFIG_DAEMON_ID_MAX);
	config_free(&cfg);
	unlink(path);

	snprintf(text, sizeof text, "[daemon]\nid = %0*d\n", CONFIG_DAEMON_ID_MAX + 1, 7);
	path = write_temp(text);
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "[daemon] id: at most 100 characters"));
	config_free(&cfg);
	unlink(path);

	path = write_temp("[daemon]\nid = gpu-h\xc3\xb6st:1\n");
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	ck_assert_ptr_nonnull(strstr(err, "[daemon] id: only visible ASCII"));
	config_free(&cfg);
	unlink(path);

	path = write_temp("[daemon]\nid = gpu host\n");
	ck_assert_int_eq(config_load(&cfg, path, err, sizeof err), -1);
	config_free(&cfg);
	unlink(path);
}
END_TEST

START_TEST(uuid_is_version4_and_unique)
{
	char a[GQ_UUID_LEN], b[GQ_UUID_LEN];

	ck_assert_int_eq(gq_uuid4(a), 0);
	ck_assert_int_eq(gq_uuid4(b), 0);
	ck_assert(gq_is_uuid(a));
	ck_assert_int_eq(a[14], '4');
	ck_assert(strchr("89ab", a[19]) != NULL);
	ck_assert_str_ne(a, b);
	ck_assert(!gq_is_uuid("not-a-uuid"));
	ck_assert(!gq_is_uuid("0123456789abcdef0123456789abcdef0123"));
	ck_assert(!gq_is_uuid("01234567-89ab-cdef-0123-456789abcdef0"));
	ck_assert(gq_is_uuid("01234567-89ab-cdef-0123-456789abcdef"));
}
END_TEST

/* Many at once (a claim's prompt ids): every one a version-4 UUID, all
 * different, across more than one batch of the random source. */
START_TEST(uuids_made_together_are_version4_and_distinct)
{
	enum { N = GQ_UUID_BATCH + 7 };
	static char ids[N][GQ_UUID_LEN];

	memset(ids, 'x', sizeof ids);
	ck_assert_int_eq(gq_uuid4_many(ids, N), 0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_msg(gq_is_uuid(ids[i]), "%zu: %.40s", i, ids[i]);
		ck_assert_int_eq(ids[i][14], '4');
		ck_assert(strchr("89ab", ids[i][19]) != NULL);
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(ids[i], ids[j]);
	}
	ck_assert_int_eq(gq_uuid4_many(ids, 0), 0);
}
END_TEST

START_TEST(sha256_matches_known_vector)
{
	char hex[GQ_SHA256_HEX_LEN];

	ck_assert_int_eq(gq_sha256_hex("abc", 3, hex), 0);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(api_keys_round_trip_their_prefix)
{
	char key[GQ_KEY_LEN], prefix[GQ_KEY_PREFIX_LEN + 1], back[GQ_KEY_PREFIX_LEN + 1];

	ck_assert_int_eq(gq_key_new(key, prefix), 0);
	ck_assert_int_eq(strlen(key), GQ_KEY_LEN - 1);
	ck_assert_int_eq(gq_key_prefix(key, back), 0);
	ck_assert_str_eq(prefix, back);
	ck_assert_int_eq(gq_key_prefix("gq_short", back), -1);
	key[20] = '\'';
	ck_assert_int_eq(gq_key_prefix(key, back), -1);
	ck_assert(gq_equal_ct("abcd", "abcd", 4));
	ck_assert(!gq_equal_ct("abcd", "abce", 4));
}
END_TEST

START_TEST(times_format_and_parse_in_utc)
{
	char rfc[GQ_RFC3339_LEN], sql[GQ_SQLTIME_LEN];
	int64_t us;

	gq_time_rfc3339(rfc, 1700000000123456LL);
	ck_assert_str_eq(rfc, "2023-11-14T22:13:20.123Z");
	gq_time_sql(sql, 1700000000123456LL);
	ck_assert_str_eq(sql, "2023-11-14 22:13:20.123456");
	ck_assert_int_eq(gq_time_parse_sql(sql, &us), 0);
	ck_assert_int_eq(us, 1700000000123456LL);
	ck_assert_int_eq(gq_time_parse_sql("2023-11-14 22:13:20", &us), 0);
	ck_assert_int_eq(us, 1700000000000000LL);
	ck_assert_int_eq(gq_time_parse_rfc3339("2023-11-14T23:13:20.5+01:00", &us), 0);
	ck_assert_int_eq(us, 1700000000500000LL);
	ck_assert_int_eq(gq_time_parse_rfc3339("2023-11-14 22:13:20Z", &us), -1);
	ck_assert_int_eq(gq_time_parse_rfc3339("2023-13-14T22:13:20Z", &us), -1);
	ck_assert_int_eq(gq_time_parse_rfc3339("yesterday", &us), -1);
}
END_TEST

START_TEST(json_parse_is_strict_and_bounded)
{
	const char *why = NULL;
	struct json_object *o;
	char deep[300];

	o = gq_json_parse("{\"a\": 1} ", 9, 64, &why);
	ck_assert_ptr_nonnull(o);
	json_object_put(o);

	ck_assert_ptr_null(gq_json_parse("{\"a\": 1", 7, 64, &why));
	ck_assert_ptr_nonnull(why);
	o = gq_json_parse("42", 2, 64, &why);         /* a top-level scalar is JSON too */
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_object_get_int(o), 42);
	json_object_put(o);
	ck_assert_ptr_null(gq_json_parse("{\"a\": 1} x", 10, 64, &why));
	ck_assert_ptr_null(gq_json_parse("{\"a\": \"\xff\"}", 10, 64, &why));
	ck_assert_ptr_null(gq_json_parse("{'a': 1}", 8, 64, &why));
	ck_assert_ptr_null(gq_json_parse("", 0, 64, &why));

	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	ck_assert_ptr_null(gq_json_parse(deep, 200, 64, &why));
}
END_TEST

START_TEST(buf_respects_its_limit)
{
	struct buf b;

	buf_init(&b, 8);
	ck_assert_int_eq(buf_append(&b, "12345", 5), 0);
	ck_assert_int_eq(buf_append(&b, "678", 3), 0);
	ck_assert_int_eq(buf_append(&b, "9", 1), -1);
	ck_assert_str_eq(b.data, "12345678");
	buf_reset(&b);
	ck_assert_int_eq(buf_printf(&b, "%d-%s", 42, "x"), 0);
	ck_assert_str_eq(b.data, "42-x");
	buf_free(&b);
}
END_TEST

START_TEST(credits_parse_and_format_exactly)
{
	int64_t m;
	char out[32];

	ck_assert_int_eq(ledger_parse_credits("12", &m), 0);
	ck_assert_int_eq(m, 12000000);
	ck_assert_int_eq(ledger_parse_credits("0.000001", &m), 0);
	ck_assert_int_eq(m, 1);
	ck_assert_int_eq(ledger_parse_credits("2.5", &m), 0);
	ck_assert_int_eq(m, 2500000);
	ck_assert_int_eq(ledger_parse_credits("-1", &m), -1);
	ck_assert_int_eq(ledger_parse_credits("1.0000001", &m), -1);
	ck_assert_int_eq(ledger_parse_credits("1.", &m), -1);
	ck_assert_int_eq(ledger_parse_credits("", &m), -1);
	ck_assert_int_eq(ledger_parse_credits("99999999999999999999", &m), -1);
	ck_assert_int_eq(ledger_parse_credits("9223372036859", &m), -1);
	ledger_format_credits(out, 2500000);
	ck_assert_str_eq(out, "2.5");
	ledger_format_credits(out, -3000000);
	ck_assert_str_eq(out, "-3");
	ledger_format_credits(out, 1);
	ck_assert_str_eq(out, "0.000001");
}
END_TEST

START_TEST(log_levels_parse)
{
	enum log_level l;

	ck_assert_int_eq(log_level_parse("debug", &l), 0);
	ck_assert_int_eq(l, GQ_LOG_DEBUG);
	ck_assert_int_eq(log_level_parse("loud", &l), -1);
}
END_TEST

START_TEST(log_q_escapes_what_could_end_a_value)
{
	/* Quotes and backslashes, so the value cannot close its quotes. */
	ck_assert_str_eq(log_q("say \"hi\" \\ bye"), "say \\\"hi\\\" \\\\ bye");
	/* Line breaks and other control characters. */
	ck_assert_str_eq(log_q("a\nb\rc\td\x01" "e\x7f"), "a\\nb\\rc\\td\\x01e\\x7f");
	/* Valid UTF-8 stays readable; bytes that are not UTF-8 do not. */
	ck_assert_str_eq(log_q("caf\xc3\xa9 \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
	ck_assert_str_eq(log_q("x\xc3(y"), "x\\xc3(y");
	ck_assert_str_eq(log_q("\xff\xfe"), "\\xff\\xfe");
	ck_assert_str_eq(log_q("\xc0\xaf"), "\\xc0\\xaf");              /* overlong '/' */
	ck_assert_str_eq(log_q("\xed\xa0\x80"), "\\xed\\xa0\\x80");     /* a surrogate */
	ck_assert_str_eq(log_q("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
	ck_assert_str_eq(log_q("cut \xe2\x82"), "cut \\xe2\\x82");      /* truncated */
	/* Valid characters that still break lines in some viewers. */
	ck_assert_str_eq(log_q("a\xc2\x85" "b\xe2\x80\xa8" "c"), "a\\xc2\\x85b\\xe2\\x80\\xa8c");
	ck_assert_str_eq(log_q(""), "");
	ck_assert_str_eq(log_q(NULL), "-");
}
END_TEST

START_TEST(log_v_is_bare_only_when_safe)
{
	ck_assert_str_eq(log_v("/v1/jobs"), "/v1/jobs");
	ck_assert_str_eq(log_v("image-queue_2"), "image-queue_2");
	ck_assert_str_eq(log_v("caf\xc3\xa9"), "caf\xc3\xa9");
	/* Anything that would split or forge a pair gets quoted and escaped. */
	ck_assert_str_eq(log_v("a b"), "\"a b\"");
	ck_assert_str_eq(log_v("x status=200"), "\"x status=200\"");
	ck_assert_str_eq(log_v("k=v"), "\"k=v\"");
	ck_assert_str_eq(log_v("say\"hi"), "\"say\\\"hi\"");
	ck_assert_str_eq(log_v("back\\slash"), "\"back\\\\slash\"");
	ck_assert_str_eq(log_v("line\nevent=forged"), "\"line\\nevent=forged\"");
	ck_assert_str_eq(log_v("\xff"), "\"\\xff\"");
	ck_assert_str_eq(log_v(""), "\"\"");
	ck_assert_str_eq(log_v(NULL), "-");
}
END_TEST

START_TEST(log_escape_cuts_between_characters)
{
	char in[4 * LOG_VALUE_MAX], out[LOG_VALUE_MAX];
	size_t n;

	/* Plain text: cut, marked, within the buffer. */
	memset(in, 'a', sizeof in - 1);
	in[sizeof in - 1] = '\0';
	log_escape(out, sizeof out, in, LOG_QUOTED);
	n = strlen(out);
	ck_assert_uint_lt(n, sizeof out);
	ck_assert_str_eq(out + n - 3, "...");

	/* Escapes are never split: no lone backslash before the mark. */
	memset(in, '"', sizeof in - 1);
	log_escape(out, sizeof out, in, LOG_BARE);
	n = strlen(out);
	ck_assert_uint_lt(n, sizeof out);
	ck_assert_str_eq(out + n - 4, "...\"");
	ck_assert_int_eq((n - 5) % 2, 0);         /* opening quote, then \" pairs */

	/* Nor are UTF-8 characters: two-byte é fills pairs exactly. */
	for (size_t i = 0; i + 2 < sizeof in; i += 2) {
		in[i] = '\xc3';
		in[i + 1] = '\xa9';
		in[i + 2] = '\0';
	}
	log_escape(out, sizeof out, in, LOG_QUOTED);
	n = strlen(out);
	ck_assert_str_eq(out + n - 3, "...");
	ck_assert_int_eq((n - 3) % 2, 0);
	ck_assert_ptr_null(strchr(out, '\\'));

	/* A small buffer is never overrun. */
	memset(out, 'Z', sizeof out);
	log_escape(out, 16, "\x01\x02\x03\x04\x05\x06\x07", LOG_BARE);
	ck_assert_uint_lt(strlen(out), 16);
	ck_assert_int_eq(out[16], 'Z');
}
END_TEST

START_TEST(log_lines_stay_one_valid_line)
{
	char path[] = "/tmp/genq-log-XXXXXX", line[8192];
	enum log_level saved = log_threshold;
	int fd = mkstemp(path), err = dup(2);
	FILE *f;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(err, 0);
	ck_assert_int_ge(dup2(fd, 2), 0);
	log_threshold = GQ_LOG_INFO;
	/* A value that was not escaped still cannot break the line (the net),
	 * and one that was cannot forge a pair. */
	log_info("t1", "raw=%s", "a\nevent=forged\xff");
	log_info("t2", "why=\"%s\" path=%s", log_q("x\" admin=\"yes"), log_v("/a b"));
	log_debug("t3", "never=%s", "written");
	log_threshold = saved;
	dup2(err, 2);
	close(err);

	ck_assert_ptr_nonnull(f = fdopen(fd, "r"));
	rewind(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_ptr_nonnull(strstr(line, " event=t1 raw=a\\x0aevent=forged\\xff\n"));
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_ptr_nonnull(strstr(line, " event=t2 why=\"x\\\" admin=\\\"yes\" path=\"/a b\"\n"));
	ck_assert_ptr_null(fgets(line, sizeof line, f));
	fclose(f);
	unlink(path);
}
END_TEST

/* The pid a line carries is read once per process, and again in a child
 * that fork() made after the parent logged. */
START_TEST(log_lines_carry_the_pid_of_the_process_writing_them)
{
	char path[] = "/tmp/genq-log-XXXXXX", line[8192], want[64];
	int fd = mkstemp(path), err = dup(2), status;
	pid_t child;
	FILE *f;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(err, 0);
	ck_assert_int_ge(dup2(fd, 2), 0);
	log_info("parent_before", "%s", "");
	if ((child = fork()) == 0) {
		log_info("child", "%s", "");
		_exit(0);
	}
	ck_assert_int_gt(child, 0);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	log_info("parent_after", "%s", "");
	dup2(err, 2);
	close(err);

	ck_assert_ptr_nonnull(f = fdopen(fd, "r"));
	rewind(f);
	snprintf(want, sizeof want, " pid=%d event=parent_before", (int)getpid());
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_msg(strstr(line, want) != NULL, "%s", line);
	snprintf(want, sizeof want, " pid=%d event=child", (int)child);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_msg(strstr(line, want) != NULL, "%s", line);
	snprintf(want, sizeof want, " pid=%d event=parent_after", (int)getpid());
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_msg(strstr(line, want) != NULL, "%s", line);
	fclose(f);
	unlink(path);
}
END_TEST

START_TEST(sql_rows_builds_one_text_per_count)
{
	static struct sql_rows t = SQL_ROWS_INIT("INSERT INTO x (a, b) VALUES ", "(?, ?)",
	    " ON DUPLICATE KEY UPDATE b = b");
	const char *one = sql_rows(&t, 1), *three = sql_rows(&t, 3), *max;

	ck_assert_str_eq(one, "INSERT INTO x (a, b) VALUES (?, ?) ON DUPLICATE KEY UPDATE b = b");
	ck_assert_str_eq(three,
	    "INSERT INTO x (a, b) VALUES (?, ?), (?, ?), (?, ?) ON DUPLICATE KEY UPDATE b = b");
	/* The same address each time: db_prepare caches by it. */
	ck_assert_ptr_eq(sql_rows(&t, 3), three);
	ck_assert_ptr_null(sql_rows(&t, 0));
	ck_assert_ptr_null(sql_rows(&t, SQL_ROWS_MAX + 1));
	max = sql_rows(&t, SQL_ROWS_MAX);
	ck_assert_ptr_nonnull(max);
	{
		size_t marks = 0;
		for (const char *p = max; *p; p++)
			marks += *p == '?';
		ck_assert_uint_eq(marks, 2 * SQL_ROWS_MAX);
	}
	for (unsigned n = 0; n <= SQL_ROWS_MAX; n++)
		free(t.text[n]), t.text[n] = NULL;
}
END_TEST

/* What wake_drain reports, in order: queue names, "*" for everything. */
struct wakes {
	char seen[8][WAKE_QUEUE_MAX + 1];
	int n;
};

static void
note_wake(void *arg, const char *queue)
{
	struct wakes *w = arg;

	if (w->n < 8)
		snprintf(w->seen[w->n++], sizeof w->seen[0], "%s", queue != NULL ? queue : "*");
}

/* A wake-up names its queue, or is about everything when it has none or
 * one too long to carry; a datagram not in the format counts as about
 * everything (a wake-up is never lost to its shape). */
START_TEST(wake_ups_name_their_queue)
{
	char dir[] = "/tmp/genq-wake-XXXXXX", path[64], longq[WAKE_QUEUE_MAX + 2];
	struct wakes w = { .n = 0 };
	int fd, raw;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/wake", dir);
	ck_assert_int_ge(fd = wake_listen(path), 0);
	memset(longq, 'x', sizeof longq - 1);
	longq[sizeof longq - 1] = '\0';
	wake_send(path, "llm");
	wake_send(path, NULL);
	wake_send(path, longq);
	longq[WAKE_QUEUE_MAX] = '\0';      /* exactly the longest carried */
	wake_send(path, longq);
	wake_send(path, "");
	/* A stranger's datagram: a name with a NUL inside. */
	ck_assert_int_ge(raw = socket(AF_UNIX, SOCK_DGRAM, 0), 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
		ck_assert_int_eq(sendto(raw, "qa\0b", 4, 0, (struct sockaddr *)&sa, sizeof sa), 4);
	}
	close(raw);
	wake_drain(fd, note_wake, &w);
	ck_assert_int_eq(w.n, 6);
	ck_assert_str_eq(w.seen[0], "llm");
	ck_assert_str_eq(w.seen[1], "*");
	ck_assert_str_eq(w.seen[2], "*");
	ck_assert_str_eq(w.seen[3], longq);
	ck_assert_str_eq(w.seen[4], "*");
	ck_assert_str_eq(w.seen[5], "*");
	close(fd);
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *
lib_suite(void)
{
	Suite *s = suite_create("lib");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, config_reads_values_over_defaults);
	tcase_add_test(tc, config_refuses_unknown_keys_and_bad_numbers);
	tcase_add_test(tc, config_refuses_daemon_ids_the_schema_cannot_hold);
	tcase_add_test(tc, uuid_is_version4_and_unique);
	tcase_add_test(tc, uuids_made_together_are_version4_and_distinct);
	tcase_add_test(tc, sha256_matches_known_vector);
	tcase_add_test(tc, api_keys_round_trip_their_prefix);
	tcase_add_test(tc, times_format_and_parse_in_utc);
	tcase_add_test(tc, json_parse_is_strict_and_bounded);
	tcase_add_test(tc, buf_respects_its_limit);
	tcase_add_test(tc, credits_parse_and_format_exactly);
	tcase_add_test(tc, log_levels_parse);
	tcase_add_test(tc, log_q_escapes_what_could_end_a_value);
	tcase_add_test(tc, log_v_is_bare_only_when_safe);
	tcase_add_test(tc, log_escape_cuts_between_characters);
	tcase_add_test(tc, log_lines_stay_one_valid_line);
	tcase_add_test(tc, log_lines_carry_the_pid_of_the_process_writing_them);
	tcase_add_test(tc, sql_rows_builds_one_text_per_count);
	tcase_add_test(tc, config_reads_backend_keys_and_refuses_unsafe_ones);
	tcase_add_test(tc, wake_ups_name_their_queue);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(lib_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
