/* config: the one INI file shared by genq-fcgi, genqd and genqctl.
 * Every setting is a row in a table (config.c) with its type, default and
 * bounds; unknown sections or keys are errors, so typos never pass silently. */
#ifndef GENQ_CONFIG_H
#define GENQ_CONFIG_H

#include <stddef.h>

struct genq_config {
	/* [database] */
	char *db_host;
	int db_port;
	char *db_socket;
	char *db_user;
	char *db_password;
	char *db_name;
	int db_connect_timeout_s;

	/* [http] */
	char *base_url;          /* public base URL, used in job urls */
	long max_body_bytes;     /* largest accepted request body */
	char *wake_socket;       /* genqd's wake-up datagram socket, "" = none */
	char *metrics_file;      /* HTTP counters shared by this host's handlers, "" = per process */

	/* [storage] */
	char *output_dir;        /* where genqd stores fetched outputs */
	char *accel_prefix;      /* nginx internal location mapped onto output_dir */
	int retention_days;      /* outputs deleted this long after the job ended; 0 = kept */
	int retention_s;         /* the same in seconds (tests); > 0 overrides the days */

	/* [daemon] */
	char *daemon_id;         /* "" = hostname:pid */
	int poll_interval_ms;    /* claim polling when no wake-up arrives */
	int history_poll_ms;     /* how often a running prompt's /history is read */
	int lease_s;             /* claim and backend lease length */
	int shutdown_grace_s;    /* SIGTERM: how long running jobs may finish */
	int http_timeout_s;      /* one backend HTTP request */
	int stall_s;             /* a database thread on one job this long is stuck */
	long max_output_bytes;   /* largest output file fetched from a backend */
	char *backend_ca_file;   /* PEM CAs trusted for https backends, "" = system store */

	/* [webhooks] */
	char *webhook_allow;     /* comma list of CIDRs non-public hosts may be in */
	int webhook_timeout_s;   /* one delivery attempt */
	int webhook_retry_h;     /* how long failed deliveries are retried */

	/* [log] */
	char *log_level;

	/* [backend_keys]: "NAME = TOKEN" lines, the bearer token genqd sends
	 * to backend NAME (OpenAI-compatible servers started with an API key). */
	struct backend_key *backend_keys;
	size_t nbackend_keys;
};

struct backend_key {
	char *name;
	char *token;
};

/* Longest backend name and token [backend_keys] accepts. */
#define CONFIG_BACKEND_NAME_MAX 64
/* [daemon] id: visible ASCII, stored in the fixed-width jobs.claimed_by
 * (sql/012_inplace.sql) and backends.lease_owner. */
#define CONFIG_DAEMON_ID_MAX 100
#define CONFIG_BACKEND_TOKEN_MAX 512

/* Fill cfg with defaults, then read path over them. On error returns -1 with
 * a one-line message in err. cfg owns its strings: release with config_free. */
int config_load(struct genq_config *cfg, const char *path, char *err, size_t errlen);
/* The files only genqd reads ([daemon] backend_ca_file) must be readable at
 * its start, not at first use: a typo then stops genqd instead of failing
 * every backend. Checked by genqd alone, which may run as another user than
 * the FastCGI handlers and genqctl. 0, or -1 with err filled. */
int config_check_daemon_files(const struct genq_config *cfg, const char *path, char *err,
    size_t errlen);

/* Defaults only (for tests and tools that run without a file). */
void config_defaults(struct genq_config *cfg);

void config_free(struct genq_config *cfg);

/* The [backend_keys] token for backend name, or NULL. */
const char *config_backend_key(const struct genq_config *cfg, const char *name);

/* The retention period in seconds (retention_s, else retention_days);
 * 0 when outputs are kept forever. */
long config_retention_s(const struct genq_config *cfg);

/* The file to read: explicit (from --config) if non-NULL, else $GENQ_CONFIG,
 * else the installed default. The returned string is not owned by the caller. */
const char *config_path(const char *explicit_path);

#endif
