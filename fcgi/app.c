/* app: the process's one database connection, opened on first use and
 * reopened after it is lost, so a handler started before MariaDB (or kept
 * across its restart) recovers without help. */
#include "autoconf.h"

#include "app.h"
#include "db.h"
#include "log.h"

struct db *
app_db(struct app *app)
{
	char err[256];

	if (app->db != NULL)
		return app->db;
	app->db = db_open(app->cfg, err, sizeof err);
	if (app->db == NULL)
		log_error("db_connect_failed", "error=\"%s\"", log_q(err));
	return app->db;
}

int
app_read(struct app *app, int (*fn)(struct db *db, void *arg), void *arg)
{
	struct db *db = app_db(app);
	int rc;

	if (db == NULL)
		return DB_GONE;
	rc = fn(db, arg);
	if (rc == DB_GONE && db_reconnect(db) == DB_OK)
		rc = fn(db, arg);
	return rc;
}
