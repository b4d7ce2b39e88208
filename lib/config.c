#include "autoconf.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

enum setting_type { SET_STR, SET_INT, SET_LONG };

struct setting {
	const char *section;
	const char *key;
	enum setting_type type;
	size_t offset;
	const char *def;
	long min, max;           /* bounds for numbers */
};

#define S(sec, key, field, def) \
	{ sec, key, SET_STR, offsetof(struct genq_config, field), def, 0, 0 }
#define I(sec, key, field, def, lo, hi) \
	{ sec, key, SET_INT, offsetof(struct genq_config, field), def, lo, hi }
#define L(sec, key, field, def, lo, hi) \
	{ sec, key, SET_LONG, offsetof(struct genq_config, field), def, lo, hi }

static const struct setting settings[] = {
	S("database", "host", db_host, "localhost"),
	I("database", "port", db_port, "3306", 0, 65535),
	S("database", "socket", db_socket, ""),
	S("database", "user", db_user, "genq"),
	S("database", "password", db_password, ""),
	S("database", "name", db_name, "genq"),
	I("database", "connect_timeout_s", db_connect_timeout_s, "5", 1, 300),

	S("http", "base_url", base_url, "http://127.0.0.1:8080"),
	L("http", "max_body_bytes", max_body_bytes, "1048576", 1024, 64L << 20),
	S("http", "wake_socket", wake_socket, ""),
	S("http", "metrics_file", metrics_file, ""),

	S("storage", "output_dir", output_dir, "/var/lib/genq/outputs"),
	S("storage", "accel_prefix", accel_prefix, "/_genq_outputs/"),
	I("storage", "retention_days", retention_days, "0", 0, 36500),
	I("storage", "retention_s", retention_s, "0", 0, 2147483647),

	S("daemon", "id", daemon_id, ""),
	I("daemon", "poll_interval_ms", poll_interval_ms, "500", 10, 60000),
	I("daemon", "history_poll_ms", history_poll_ms, "100", 5, 60000),
	I("daemon", "lease_s", lease_s, "15", 2, 3600),
	I("daemon", "shutdown_grace_s", shutdown_grace_s, "30", 0, 86400),
	I("daemon", "http_timeout_s", http_timeout_s, "30", 1, 3600),
	I("daemon", "stall_s", stall_s, "300", 2, 86400),
	L("daemon", "max_output_bytes", max_output_bytes, "268435456", 1024, 1L << 40),
	S("daemon", "backend_ca_file", backend_ca_file, ""),

	S("webhooks", "allow_private", webhook_allow, ""),
	I("webhooks", "timeout_s", webhook_timeout_s, "10", 1, 60),
	I("webhooks", "retry_hours", webhook_retry_h, "24", 0, 24 * 30),

	S("log", "level", log_level, "info"),
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

struct load_state {
	struct genq_config *cfg;
	char *err;
	size_t errlen;
	int failed;
};

static int
set_value(struct genq_config *cfg, const struct setting *s, const char *value,
    char *err, size_t errlen)
{
	char *field = (char *)cfg + s->offset;
	char *end;
	long n;

	if (s->type == SET_STR) {
		char *copy = strdup(value);
		if (copy == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}
	errno = 0;
	n = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || n < s->min || n > s->max) {
		snprintf(err, errlen, "[%s] %s: '%s' is not an integer in %ld..%ld",
		    s->section, s->key, value, s->min, s->max);
		return -1;
	}
	if (s->type == SET_INT)
		*(int *)field = (int)n;
	else
		*(long *)field = n;
	return 0;
}

/* A [backend_keys] line. Names as genqctl accepts them; tokens visible
 * ASCII only, so one can never break the header line it is sent in. */
static int
add_backend_key(struct genq_config *cfg, const char *name, const char *token,
    char *err, size_t errlen)
{
	struct backend_key *v;
	size_t nlen = strlen(name), tlen = strlen(token);

	if (nlen == 0 || nlen > CONFIG_BACKEND_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != nlen) {
		snprintf(err, errlen, "[backend_keys] %.80s: not a backend name", name);
		return -1;
	}
	if (tlen == 0 || tlen > CONFIG_BACKEND_TOKEN_MAX) {
		snprintf(err, errlen, "[backend_keys] %s: the token must be 1 to %d characters",
		    name, CONFIG_BACKEND_TOKEN_MAX);
		return -1;
	}
	for (size_t i = 0; i < tlen; i++)
		if (token[i] < 0x21 || token[i] > 0x7e) {
			snprintf(err, errlen, "[backend_keys] %s: the token may hold only visible "
			    "ASCII characters", name);
			return -1;
		}
	if (config_backend_key(cfg, name) != NULL) {
		snprintf(err, errlen, "[backend_keys] %s: given twice", name);
		return -1;
	}
	if ((v = realloc(cfg->backend_keys, (cfg->nbackend_keys + 1) * sizeof *v)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cfg->backend_keys = v;
	v = &cfg->backend_keys[cfg->nbackend_keys];
	v->name = strdup(name);
	v->token = strdup(token);
	if (v->name == NULL || v->token == NULL) {
		free(v->name);
		free(v->token);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cfg->nbackend_keys++;
	return 0;
}

const char *
config_backend_key(const struct genq_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nbackend_keys; i++)
		if (strcmp(cfg->backend_keys[i].name, name) == 0)
			return cfg->backend_keys[i].token;
	return NULL;
}

static int
on_ini_entry(void *user, const char *section, const char *key, const char *value)
{
	struct load_state *st = user;

	if (st->failed)
		return 0;
	if (strcmp(section, "backend_keys") == 0) {
		if (add_backend_key(st->cfg, key, value, st->err, st->errlen) < 0) {
			st->failed = 1;
			return 0;
		}
		return 1;
	}
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (strcmp(settings[i].section, section) == 0 &&
		    strcmp(settings[i].key, key) == 0) {
			if (set_value(st->cfg, &settings[i], value, st->err, st->errlen) < 0) {
				st->failed = 1;
				return 0;
			}
			return 1;
		}
	}
	snprintf(st->err, st->errlen, "unknown setting [%s] %s", section, key);
	st->failed = 1;
	return 0;
}

void
config_defaults(struct genq_config *cfg)
{
	char ignored[128];

	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < NSETTINGS; i++) {
		/* Defaults are compile-time constants inside their bounds. */
		if (set_value(cfg, &settings[i], settings[i].def, ignored, sizeof ignored) < 0)
			abort();
	}
}

int
config_check_daemon_files(const struct genq_config *cfg, const char *path, char *err,
    size_t errlen)
{
	FILE *f;

	if (cfg->backend_ca_file[0] == '\0')
		return 0;
	if ((f = fopen(cfg->backend_ca_file, "r")) == NULL) {
		snprintf(err, errlen, "%s: [daemon] backend_ca_file: %s: %s", path,
		    cfg->backend_ca_file, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* Settings whose check is more than a range: run once the file is read. */
static int
check_values(const struct genq_config *cfg, char *err, size_t errlen)
{
	size_t n = strlen(cfg->daemon_id);

	if (n > CONFIG_DAEMON_ID_MAX) {
		snprintf(err, errlen, "[daemon] id: at most %d characters", CONFIG_DAEMON_ID_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (cfg->daemon_id[i] < 0x21 || cfg->daemon_id[i] > 0x7e) {
			snprintf(err, errlen, "[daemon] id: only visible ASCII characters");
			return -1;
		}
	return 0;
}

int
config_load(struct genq_config *cfg, const char *path, char *err, size_t errlen)
{
	struct load_state st = { cfg, err, errlen, 0 };
	FILE *f;
	int rc;

	config_defaults(cfg);
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = ini_parse_file(f, on_ini_entry, &st);
	fclose(f);
	if (!st.failed && rc == 0 && check_values(cfg, err, errlen) < 0)
		st.failed = 1;
	if (st.failed) {
		/* err already says what; add where. */
		char what[256];
		snprintf(what, sizeof what, "%s", err);
		snprintf(err, errlen, "%s: %s", path, what);
		return -1;
	}
	if (rc != 0) {
		snprintf(err, errlen, "%s: syntax error on line %d", path, rc);
		return -1;
	}
	return 0;
}

void
config_free(struct genq_config *cfg)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		if (settings[i].type == SET_STR) {
			char **field = (char **)((char *)cfg + settings[i].offset);
			free(*field);
			*field = NULL;
		}
	}
	for (size_t i = 0; i < cfg->nbackend_keys; i++) {
		free(cfg->backend_keys[i].name);
		free(cfg->backend_keys[i].token);
	}
	free(cfg->backend_keys);
	cfg->backend_keys = NULL;
	cfg->nbackend_keys = 0;
}

long
config_retention_s(const struct genq_config *cfg)
{
	if (cfg->retention_s > 0)
		return cfg->retention_s;
	return (long)cfg->retention_days * 86400L;
}

const char *
config_path(const char *explicit_path)
{
	const char *env;

	if (explicit_path != NULL && *explicit_path)
		return explicit_path;
	env = getenv("GENQ_CONFIG");
	if (env != NULL && *env)
		return env;
	return SYSCONFDIR "/genq/genq.conf";
}
