# Migrations, applied in file-name order by `genqctl migrate`.
sqldir = $(pkgdatadir)/sql
dist_sql_DATA = sql/001_init.sql
