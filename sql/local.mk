# Migrations, applied in file-name order by `genqctl migrate`.
sqldir = $(pkgdatadir)/sql
dist_sql_DATA = sql/001_init.sql \
	sql/002_admission.sql \
	sql/003_fairshare.sql \
	sql/004_deps.sql \
	sql/007_webhooks.sql \
	sql/008_indexes.sql \
	sql/009_reporting.sql \
	sql/010_retry_backend.sql \
	sql/011_expiry.sql \
	sql/012_inplace.sql \
	sql/013_lease_index.sql
