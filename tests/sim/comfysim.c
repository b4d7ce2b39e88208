/* comfysim: a ComfyUI simulator in C for the dispatch benchmark (see
 * comfysim.h and tests/sim/README.md). This file: the command line, the
 * log, and the process's life. */
#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comfysim.h"
#include "comfysim_valid.h"

/* ---- logging ---- */

long long
sim_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The Python simulator's format: `<local time> <name>: <line>`. */
void
sim_log(struct sim *s, const char *fmt, ...)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	va_list ap;

	localtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&s->log_lock);
	fprintf(s->log, "%s %s: ", stamp, s->opt.name);
	va_start(ap, fmt);
	vfprintf(s->log, fmt, ap);
	va_end(ap);
	fputc('\n', s->log);
	pthread_mutex_unlock(&s->log_lock);
}

json_object *
sim_queue_info(struct sim *s)
{
	json_object *o = json_object_new_object(), *e = json_object_new_object();

	json_object_object_add(e, "queue_remaining",
	    json_object_new_int64((int64_t)s->nheap + (s->running != NULL)));
	json_object_object_add(o, "exec_info", e);
	return o;
}

/* ---- the process ---- */

static void
usage(FILE *f)
{
	fprintf(f, "usage: comfysim --port N [--host 127.0.0.1] [--run-ms 200] [--output-dir DIR]\n"
	    "                [--input-dir DIR] [--temp-dir DIR] [--name NAME] [--pidfile F] [--log F]\n"
	    "                [--checkpoints a.safetensors,b.safetensors] [--delay-ms N] [--cache-none]\n"
	    "The Python simulator's fault knobs (--fail-next, --http-500-next, --hang, --ws-off,\n"
	    "--previews) and /sim routes are not served: use tests/sim/comfyui_sim.py for those.\n");
}

static bool
parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int
parse_args(int argc, char **argv, struct sim_opts *o)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'}, {"host", required_argument, NULL, 'H'},
		{"run-ms", required_argument, NULL, 'r'}, {"output-dir", required_argument, NULL, 'o'},
		{"input-dir", required_argument, NULL, 'i'}, {"temp-dir", required_argument, NULL, 't'},
		{"name", required_argument, NULL, 'n'}, {"pidfile", required_argument, NULL, 'P'},
		{"log", required_argument, NULL, 'l'}, {"checkpoints", required_argument, NULL, 'c'},
		{"delay-ms", required_argument, NULL, 'd'}, {"cache-none", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	long v;
	int ch;
	bool have_port = false;

	*o = (struct sim_opts){.host = "127.0.0.1", .run_ms = 200, .name = "comfyui-sim",
	    .checkpoints = "sd15.safetensors,sdxl.safetensors"};
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (!parse_long(optarg, 0, 65535, &v))
				goto bad;
			o->port = (int)v;
			have_port = true;
			break;
		case 'H': o->host = optarg; break;
		case 'r':
			if (!parse_long(optarg, 0, 86400000, &o->run_ms))
				goto bad;
			break;
		case 'd':
			if (!parse_long(optarg, 0, 600000, &o->delay_ms))
				goto bad;
			break;
		case 'o': o->output_dir = optarg; break;
		case 'i': o->input_dir = optarg; break;
		case 't': o->temp_dir = optarg; break;
		case 'n': o->name = optarg; break;
		case 'P': o->pidfile = optarg; break;
		case 'l': o->log_path = optarg; break;
		case 'c': o->checkpoints = optarg; break;
		case 'C': o->cache_none = true; break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (optind != argc || !have_port)
		goto bad;
	return 0;
bad:
	usage(stderr);
	return -1;
}

/* mkdir -p, then the absolute path (malloc'd), or NULL. */
static char *
make_dir(const char *path)
{
	char buf[4096];

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return NULL;
	return realpath(buf, NULL);
}

static int
setup_dirs(struct sim *s)
{
	char parent[4096], tmpl[] = "/tmp/comfysim_XXXXXX", buf[4200];
	const char *o = s->opt.output_dir;

	if (o == NULL) {
		if (mkdtemp(tmpl) == NULL)
			return -1;
		snprintf(buf, sizeof buf, "%s/output", tmpl);
		o = buf;
	}
	if ((s->output_dir = make_dir(o)) == NULL)
		return -1;
	/* ComfyUI keeps output/, input/, temp/ side by side */
	snprintf(parent, sizeof parent, "%s", s->output_dir);
	if (strrchr(parent, '/'))
		*strrchr(parent, '/') = '\0';
	snprintf(buf, sizeof buf, "%s/input", parent);
	if ((s->input_dir = make_dir(s->opt.input_dir ? s->opt.input_dir : buf)) == NULL)
		return -1;
	snprintf(buf, sizeof buf, "%s/temp", parent);
	if ((s->temp_dir = make_dir(s->opt.temp_dir ? s->opt.temp_dir : buf)) == NULL)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct sim s = {0};
	struct MHD_Daemon *d = NULL;
	struct sockaddr_in addr = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *info;
	pthread_t worker;
	bool worker_started = false;
	sigset_t sigs;
	int sig, rc = 1;

	if (parse_args(argc, argv, &s.opt) != 0)
		return 2;
	if (inet_pton(AF_INET, s.opt.host, &addr.sin_addr) != 1) {
		fprintf(stderr, "comfysim: --host must be an IPv4 address\n");
		return 2;
	}
	addr.sin_port = htons((uint16_t)s.opt.port);
	/* Signals are taken by sigwait in main: every thread starts with them blocked. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Keep freed memory: returning it to the kernel and faulting it back in
	 * was a large share of a prompt's CPU (page faults are dear on a VM). */
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TOP_PAD, 16 << 20);
	pthread_mutex_init(&s.lock, NULL);
	pthread_mutex_init(&s.log_lock, NULL);
	pthread_cond_init(&s.work, NULL);
	pthread_cond_init(&s.wake, NULL);
	s.history = json_object_new_object();
	s.cache = json_object_new_object();
	s.prefix_counters = json_object_new_object();
	s.ckpt_list = json_object_new_array();
	s.log = stderr;
	{
		char *list = strdup(s.opt.checkpoints), *save = NULL;
		for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
			json_object_array_add(s.ckpt_list, json_object_new_string(t));
		free(list);
	}
	if (valid_init(s.ckpt_list) != 0 || setup_dirs(&s) != 0) {
		fprintf(stderr, "comfysim: cannot set up (directories: %s)\n", strerror(errno));
		goto out;
	}
	/* after the directories: the log usually sits beside them */
	if (s.opt.log_path) {
		if ((s.log = fopen(s.opt.log_path, "a")) == NULL) {
			fprintf(stderr, "comfysim: cannot open %s: %s\n", s.opt.log_path, strerror(errno));
			s.log = stderr;
			goto out;
		}
		s.log_requests = true;
	}
	setvbuf(s.log, NULL, _IOLBF, 0);   /* whole lines: tests read the log while we run */
	if ((s.ws = ws_start(&s)) == NULL) {
		fprintf(stderr, "comfysim: cannot start the WebSocket thread\n");
		goto out;
	}
	if (pthread_create(&worker, NULL, prompt_worker, &s) != 0)
		goto out;
	worker_started = true;
	d = http_start(&s, &addr);
	if (d == NULL) {
		fprintf(stderr, "comfysim: cannot listen on %s:%d\n", s.opt.host, s.opt.port);
		goto out;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	s.port = info ? info->port : s.opt.port;
	if (s.opt.pidfile) {
		FILE *f = fopen(s.opt.pidfile, "w");
		if (f) {
			fprintf(f, "%ld\n", (long)getpid());
			fclose(f);
		}
	}
	sim_log(&s, "listening on %s:%d output=%s input=%s", s.opt.host, s.port, s.output_dir, s.input_dir);
	printf("listening port=%d\n", s.port);
	fflush(stdout);
	while (sigwait(&sigs, &sig) != 0)
		;
	rc = 0;
out:
	/* Stop in dependency order: the worker (it sends on sockets), the
	 * sockets (MHD must get them back before it stops), then HTTP. */
	pthread_mutex_lock(&s.lock);
	s.stopping = true;
	pthread_cond_broadcast(&s.work);
	pthread_cond_broadcast(&s.wake);
	pthread_mutex_unlock(&s.lock);
	if (worker_started)
		pthread_join(worker, NULL);
	ws_stop(s.ws);
	if (d)
		MHD_stop_daemon(d);
	ws_free(s.ws);
	if (s.opt.pidfile && rc == 0)
		unlink(s.opt.pidfile);
	if (rc == 0)
		sim_log(&s, "stopped");
	while (s.nheap)
		qitem_free(s.heap[--s.nheap]);
	free(s.heap);
	json_object_put(s.history);
	json_object_put(s.cache);
	json_object_put(s.prefix_counters);
	json_object_put(s.ckpt_list);
	valid_cleanup();
	png_cleanup();
	free(s.output_dir);
	free(s.input_dir);
	free(s.temp_dir);
	if (s.log != stderr)
		fclose(s.log);
	pthread_mutex_destroy(&s.lock);
	pthread_mutex_destroy(&s.log_lock);
	pthread_cond_destroy(&s.work);
	pthread_cond_destroy(&s.wake);
	return rc;
}
