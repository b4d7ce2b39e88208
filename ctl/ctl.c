#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "db.h"
#include "log.h"

static const struct ctl_cmd *const root_subs[] = {
	&migrate_cmd, &user_cmd, &key_cmd, &credits_cmd, &tier_cmd,
	&queue_cmd, &backend_cmd, &job_cmd, &stats_cmd,
};

/* The nouns are defined in their own files, so the root's table is filled
 * in from them once, on first use (C has no constant copies of externs). */
static struct ctl_cmd root_table[CTL_NSUBS(root_subs)];

static const struct ctl_cmd root_cmd = {
	"genqctl", NULL, "[--config PATH] COMMAND ...",
	"Manage a genq installation: schema, users, keys, credits, tiers, queues, backends, jobs.",
	"  --config PATH  configuration file (default: $GENQ_CONFIG, else " SYSCONFDIR "/genq/genq.conf)\n"
	"  --help         this text; COMMAND --help describes a command\n",
	root_table, CTL_NSUBS(root_table),
};

const struct ctl_cmd *
ctl_tree(void)
{
	if (root_table[0].name == NULL)
		for (size_t i = 0; i < CTL_NSUBS(root_subs); i++)
			root_table[i] = *root_subs[i];
	return &root_cmd;
}

int
ctl_help(const struct ctl_cmd *cmd)
{
	printf("usage: genqctl %s\n%s\n", cmd->usage, cmd->summary);
	if (cmd->help != NULL)
		printf("\n%s", cmd->help);
	if (cmd->nsubs > 0) {
		size_t w = 0;

		printf("\ncommands:\n");
		for (size_t i = 0; i < cmd->nsubs; i++)
			if (strlen(cmd->subs[i].usage) > w)
				w = strlen(cmd->subs[i].usage);
		for (size_t i = 0; i < cmd->nsubs; i++)
			printf("  %-*s  %s\n", (int)w, cmd->subs[i].usage, cmd->subs[i].summary);
	}
	return CTL_DONE;
}

static const struct ctl_cmd *
find_sub(const struct ctl_cmd *cmd, const char *name)
{
	for (size_t i = 0; i < cmd->nsubs; i++)
		if (strcmp(cmd->subs[i].name, name) == 0)
			return &cmd->subs[i];
	return NULL;
}

int
ctl_dispatch(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv)
{
	const struct ctl_cmd *sub;
	bool root = cmd == &root_cmd;
	/* How to ask for help about cmd: "genqctl --help", "genqctl user --help". */
	const char *name = root ? "" : cmd->name, *sep = root ? "" : " ";

	if (argc < 1)
		return ctl_fail("missing %scommand (try 'genqctl %s%s--help')",
		    root ? "" : "sub", name, sep);
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "help") == 0)
		return ctl_help(cmd);
	sub = find_sub(cmd, argv[0]);
	if (sub == NULL)
		return ctl_fail("unknown %scommand '%.64s' (try 'genqctl %s%s--help')",
		    root ? "" : "sub", argv[0], name, sep);
	if (sub->run == NULL)
		return ctl_dispatch(ctl, sub, argc - 1, argv + 1);
	/* GNU getopt starts over, '+' or not, when optind is 0. */
	optind = 0;
	return sub->run(ctl, sub, argc, argv);
}

const struct genq_config *
ctl_config(struct ctl *ctl)
{
	char err[512];
	enum log_level level;

	if (ctl->cfg_loaded)
		return &ctl->cfg;
	if (config_load(&ctl->cfg, config_path(ctl->config_path), err, sizeof err) < 0) {
		config_free(&ctl->cfg);
		ctl_fail("%s", err);
		return NULL;
	}
	/* Library logs are for daemons; a tool speaks through its error line,
	 * so only errors (a statement that cannot be prepared) get through. */
	if (log_level_parse(ctl->cfg.log_level, &level) == 0 && level == GQ_LOG_DEBUG)
		log_threshold = GQ_LOG_DEBUG;
	else
		log_threshold = GQ_LOG_NONE;
	ctl->cfg_loaded = true;
	return &ctl->cfg;
}

struct db *
ctl_db(struct ctl *ctl)
{
	char err[512];

	if (ctl->db != NULL)
		return ctl->db;
	if (ctl_config(ctl) == NULL)
		return NULL;
	ctl->db = db_open(&ctl->cfg, err, sizeof err);
	if (ctl->db == NULL)
		ctl_fail("%s", err);
	return ctl->db;
}

int
ctl_print_rows(struct db *db, struct db_stmt *st, size_t ncols,
    const char *const *header, ctl_row_fn fn)
{
	const char *cell[TBL_MAX_COLS];
	char buf[TBL_MAX_COLS][32];
	struct tbl t;
	int rc;

	if ((rc = db_exec(st)) != DB_OK)
		return ctl_fail_db(db, rc);
	if (tbl_init(&t, ncols, header) < 0)
		return ctl_fail("too many columns");
	while ((rc = db_next(st)) == 1) {
		fn(st, cell, buf);
		if (tbl_add(&t, cell) < 0) {
			tbl_free(&t);
			return ctl_fail("out of memory");
		}
	}
	if (rc == 0)
		tbl_print(&t);
	tbl_free(&t);
	return rc == 0 ? CTL_OK : ctl_fail_db(db, rc);
}

void
ctl_close(struct ctl *ctl)
{
	db_close(ctl->db);
	ctl->db = NULL;
	if (ctl->cfg_loaded)
		config_free(&ctl->cfg);
	ctl->cfg_loaded = false;
}

int
ctl_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		CTL_OPT_HELP,
		CTL_OPT_END,
	};
	struct ctl ctl = { 0 };
	int c, rc;

	log_set_program("genqctl");
	log_threshold = GQ_LOG_NONE;
	optind = 0;
	/* '+': stop at the command, whose options are its own. */
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'h':
			return ctl_help(ctl_tree()) == CTL_DONE ? 0 : 1;
		case ':':
			return ctl_fail("option '%.64s' needs a value", argv[optind - 1]);
		default:
			return ctl_fail("unknown option '%.64s' (try 'genqctl --help')", argv[optind - 1]);
		}
	}
	rc = ctl_dispatch(&ctl, ctl_tree(), argc - optind, argv + optind);
	ctl_close(&ctl);
	if (fflush(stdout) != 0 && rc == CTL_OK)
		rc = ctl_fail("writing output failed");
	return rc == CTL_DONE ? 0 : rc;
}

int
ctl_list_verb(struct ctl *ctl, const struct ctl_cmd *cmd, int argc, char **argv,
    const char *sql, size_t ncols, const char *const *header, ctl_row_fn row)
{
	struct db_stmt *st;
	struct db *db;
	int rc;

	if ((rc = ctl_args(cmd, argc, argv, 0, 0)) != CTL_OK)
		return rc;
	if ((db = ctl_db(ctl)) == NULL)
		return CTL_FAIL;
	if ((st = db_prepare(db, sql)) == NULL)
		return ctl_fail_db(db, db_last_status(db));
	return ctl_print_rows(db, st, ncols, header, row);
}

int
ctl_txn(struct ctl *ctl, db_txn_fn fn, void *arg, const char *why)
{
	struct db *db = ctl_db(ctl);
	int rc;

	if (db == NULL)
		return CTL_FAIL;
	rc = db_txn(db, fn, arg);
	if (rc > 0)
		return ctl_fail("%s", why);
	if (rc != DB_OK)
		return ctl_fail_db(db, rc);
	return CTL_OK;
}

int
ctl_row_exists(struct db *db, const char *sql, const char *param)
{
	struct db_stmt *st = db_prepare(db, sql);
	int rc;

	if (st == NULL)
		return db_last_status(db);
	db_bind_str(st, 0, param);
	if ((rc = db_exec(st)) != DB_OK)
		return rc;
	return db_next(st);
}
