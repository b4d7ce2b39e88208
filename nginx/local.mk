# nginx site, systemd units and an example configuration, filled in with the
# installation's paths.
nginxdir = $(sysconfdir)/nginx/sites-available
nginx_DATA = nginx/genq.conf
systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = systemd/genqd.service systemd/genq-fcgi.service
wwwdir = $(pkgdatadir)/www
dist_www_DATA = nginx/www/job.html nginx/www/job.js nginx/www/style.css \
	nginx/www/queues.html nginx/www/queues.js
examplesdir = $(pkgdatadir)/examples
dist_examples_DATA = examples/genq.conf examples/txt2img.json
EXTRA_DIST += nginx/genq-site.conf.in systemd/genqd.service.in systemd/genq-fcgi.service.in
CLEANFILES += $(nginx_DATA) $(systemdunit_DATA)

subst_paths = sed \
	-e 's|@LISTEN@|80|g' \
	-e 's|@FCGI_SOCKET@|/run/genq/fcgi.sock|g' \
	-e 's|@NGINX_MAX_BODY@|8m|g' \
	-e 's|@STATIC_ROOT@|$(pkgdatadir)/www|g' \
	-e 's|@ACCEL_PREFIX@|/_genq_outputs/|g' \
	-e 's|@OUTPUT_DIR@|$(localstatedir)/lib/genq/outputs|g' \
	-e 's|@pkgdatadir@|$(pkgdatadir)|g' \
	-e 's|@sbindir@|$(sbindir)|g' \
	-e 's|@bindir@|$(bindir)|g' \
	-e 's|@sysconfdir@|$(sysconfdir)|g'

nginx/genq.conf: $(srcdir)/nginx/genq-site.conf.in Makefile
	$(AM_V_GEN)$(MKDIR_P) nginx && $(subst_paths) $(srcdir)/nginx/genq-site.conf.in >$@

systemd/genqd.service: $(srcdir)/systemd/genqd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && $(subst_paths) $(srcdir)/systemd/genqd.service.in >$@

systemd/genq-fcgi.service: $(srcdir)/systemd/genq-fcgi.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) systemd && $(subst_paths) $(srcdir)/systemd/genq-fcgi.service.in >$@
