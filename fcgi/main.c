/* genq-fcgi: the API's FastCGI responder. Started by spawn-fcgi as a pool
 * of processes sharing one listening socket on fd 0; each process answers
 * one request at a time with its own database connection. Run with a
 * non-socket stdin it serves exactly one plain-CGI request. */
#include "autoconf.h"

#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "app.h"
#include "config.h"
#include "db.h"
#include "log.h"

/* Set by the signal handler; the loop exits after the current request. */
static volatile sig_atomic_t stop_requested;
/* True while a request is being answered. */
static volatile sig_atomic_t busy;

static void
on_stop(int sig)
{
	(void)sig;
	/* Idle in accept(): nothing to finish, leave now. */
	if (!busy)
		_exit(0);
	stop_requested = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: genq-fcgi [--config PATH] [--log FILE]\n"
	    "  FastCGI responder for the genq API (run under spawn-fcgi), or a\n"
	    "  plain CGI program when stdin is not a socket.\n"
	    "  --config PATH  configuration file (default: $GENQ_CONFIG, else %s)\n"
	    "  --log FILE     append log lines to FILE instead of stderr\n",
	    config_path(NULL));
}

static int
redirect_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (fd < 0) {
		fprintf(stderr, "genq-fcgi: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fd != STDERR_FILENO) {
		if (dup2(fd, STDERR_FILENO) < 0) {
			fprintf(stderr, "genq-fcgi: %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static int
serve_fastcgi(struct app *app)
{
	FCGX_Request fr;
	struct req r;

	if (FCGX_Init() != 0 || FCGX_InitRequest(&fr, 0, 0) != 0) {
		log_error("fcgi_init_failed", "error=\"%s\"", "cannot use fd 0 as a FastCGI socket");
		return 1;
	}
	log_info("started", "mode=fastcgi");
	while (!stop_requested) {
		busy = 0;
		if (stop_requested || FCGX_Accept_r(&fr) < 0)
			break;
		busy = 1;
		req_init_fcgx(&r, &fr);
		dispatch(app, &r);
		FCGX_Finish_r(&fr);
	}
	log_info("stopped", "mode=%s", "fastcgi");
	FCGX_Free(&fr, 1);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_arg = NULL, *log_arg = NULL;
	struct genq_config cfg;
	struct app app = { &cfg, NULL };
	char err[512];
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_arg = optarg;
			break;
		case 'l':
			log_arg = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_set_program("genq-fcgi");
	if (log_arg != NULL && redirect_log(log_arg) < 0)
		return 1;
	if (config_load(&cfg, config_path(config_arg), err, sizeof err) < 0) {
		log_error("config_failed", "error=\"%s\"", log_q(err));
		config_free(&cfg);
		return 1;
	}
	if (log_level_parse(cfg.log_level, &log_threshold) < 0)
		log_warn("config_log_level_unknown", "level=%s", cfg.log_level);
	install_signals();
	/* libcurl is used only for its URL parser, but it wants this once. */
	curl_global_init(CURL_GLOBAL_NOTHING);

	if (FCGX_IsCGI()) {
		struct req r;
		req_init_cgi(&r);
		busy = 1;
		dispatch(&app, &r);
		rc = 0;
	} else {
		rc = serve_fastcgi(&app);
	}
	db_close(app.db);
	curl_global_cleanup();
	config_free(&cfg);
	return rc;
}
