#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "config.h"
#include "genqd.h"
#include "gqtime.h"
#include "http.h"
#include "media.h"
#include "store.h"

#define FETCH_TRIES 3                    /* per file, before the attempt fails */
#define FETCH_RETRY_US 1000000LL

struct fetch_item {
	char *url;                           /* owned */
	char ext[MEDIA_EXT_MAX + 1];
};

/* One attempt's outputs on their way into the store (store.h). */
struct fetch {
	struct fetch_item *items;
	size_t n, next;                      /* next: the file being fetched */
	int tries;
	int fd;                              /* temporary file, -1 when none */
	char tmp_path[PATH_MAX];
	EVP_MD_CTX *md;                      /* SHA-256 of what was written */
	int64_t bytes;
};

static void
drop_temp(struct fetch *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
		unlink(f->tmp_path);
	}
	EVP_MD_CTX_free(f->md);
	f->md = NULL;
	f->bytes = 0;
}

void
outputs_abort(struct genqd *g, struct run *r)
{
	struct fetch *f = r->fetch;

	(void)g;
	if (f == NULL)
		return;
	drop_temp(f);
	for (size_t i = 0; i < f->n; i++)
		free(f->items[i].url);
	free(f->items);
	free(f);
	r->fetch = NULL;
}

static int
sink(const void *data, size_t len, void *arg)
{
	struct run *r = arg;
	struct fetch *f = r->fetch;
	const char *p = data;

	if (EVP_DigestUpdate(f->md, data, len) != 1)
		return -1;
	while (len > 0) {
		ssize_t n = write(f->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	f->bytes += (int64_t)(p - (const char *)data);
	return 0;
}

static void on_file(const struct http_result *res, void *arg);

/* Open a temporary file for the current item and start its download. */
static void
start_item(struct genqd *g, struct run *r)
{
	struct fetch *f = r->fetch;

	f->fd = store_open_temp(g->cfg->output_dir, r->job_id, f->next, f->tmp_path,
	    sizeof f->tmp_path);
	if (f->fd < 0) {
		run_fail(g, r, "output_error", true, "cannot create a file in the store: %s",
		    strerror(errno));
		return;
	}
	f->bytes = 0;
	f->md = EVP_MD_CTX_new();
	if (f->md == NULL || EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) != 1) {
		drop_temp(f);
		run_fail(g, r, "output_error", true, "cannot start SHA-256");
		return;
	}
	r->req = http_get_sink(g->http, f->items[f->next].url, (uint64_t)g->cfg->max_output_bytes,
	    sink, on_file, r);
	if (r->req == NULL) {
		drop_temp(f);
		run_fail(g, r, "output_error", true, "cannot start the download");
	}
}

/* The download of the current item ended well: seal it under its name. */
static int
seal_item(struct genqd *g, struct run *r, const char *reply_type)
{
	struct fetch *f = r->fetch;
	struct stored_output *o = &r->out.outputs[f->next];
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	char final[PATH_MAX];
	static const char hex[] = "0123456789abcdef";

	if (EVP_DigestFinal_ex(f->md, digest, &dlen) != 1 || dlen != 32)
		return -1;
	for (unsigned i = 0; i < 32; i++) {
		o->sha256[2 * i] = hex[digest[i] >> 4];
		o->sha256[2 * i + 1] = hex[digest[i] & 15];
	}
	o->sha256[64] = '\0';
	o->bytes = f->bytes;
	media_content_type(reply_type, f->items[f->next].ext, o->content_type);
	if (store_path(r->job_id, f->next, f->items[f->next].ext, o->path, sizeof o->path) < 0 ||
	    snprintf(final, sizeof final, "%s/%s", g->cfg->output_dir, o->path) >= (int)sizeof final)
		return -1;
	/* On disk before the job says succeeded: finish_flush syncs the file
	 * system once for every output of its batch before the commit. */
	if (rename(f->tmp_path, final) < 0)
		return -1;
	close(f->fd);
	f->fd = -1;
	EVP_MD_CTX_free(f->md);
	f->md = NULL;
	return 0;
}

static void
on_file(const struct http_result *res, void *arg)
{
	struct run *r = arg;
	struct genqd *g = r->g;
	struct fetch *f = r->fetch;
	enum run_state before = r->state;

	r->req = NULL;
	if (res->too_large) {
		drop_temp(f);
		run_fail(g, r, "output_too_large", false, "output %zu is over %ld bytes",
		    f->next, g->cfg->max_output_bytes);
		return;
	}
	if (res->curl_code != 0 || res->status != 200 || res->sink_failed) {
		char why[256];

		drop_temp(f);
		if (res->sink_failed)
			snprintf(why, sizeof why, "writing to the store failed");
		else if (res->curl_code != 0)
			snprintf(why, sizeof why, "%s", res->error);
		else
			snprintf(why, sizeof why, "HTTP %ld", res->status);
		run_log(warn, "output_fetch_failed", r, " index=%zu try=%d why=\"%s\"",
		    f->next, f->tries + 1, log_q(why));
		if (res->curl_code != 0 || res->status >= 500) {
			backend_failed(g, r->backend, why);
			if (r->state != before)
				return;
		}
		if (++f->tries < FETCH_TRIES) {
			r->next_at = gq_mono_us() + FETCH_RETRY_US;
			return;
		}
		run_fail(g, r, "output_error", true, "cannot fetch output %zu: %s", f->next, why);
		return;
	}
	if (seal_item(g, r, res->content_type) < 0) {
		int saved = errno;
		drop_temp(f);
		run_fail(g, r, "output_error", true, "cannot store output %zu: %s", f->next,
		    strerror(saved));
		return;
	}
	run_log(debug, "output_stored", r, " index=%zu bytes=%lld path=%s", f->next,
	    (long long)r->out.outputs[f->next].bytes, r->out.outputs[f->next].path);
	f->tries = 0;
	f->next++;
	r->out.noutputs = f->next;
	if (f->next < f->n) {
		start_item(g, r);
		return;
	}
	/* The directory entries too are made durable by finish_flush. */
	r->out.kind = OUTCOME_SUCCEEDED;
	outputs_abort(g, r);
	run_end(g, r);
}

void
outputs_poll(struct genqd *g, struct run *r)
{
	if (r->fetch != NULL && r->req == NULL)
		start_item(g, r);
}

void
outputs_fetch(struct genqd *g, struct run *r, char *const *urls, char *const *names,
    size_t nfiles)
{
	struct fetch *f;

	r->state = RUN_FETCHING;
	r->out.noutputs = 0;
	free(r->out.outputs);
	r->out.outputs = NULL;
	if (nfiles == 0) {
		r->out.kind = OUTCOME_SUCCEEDED;
		run_end(g, r);
		return;
	}
	if (!gq_is_uuid(r->job_id)) {
		run_fail(g, r, "output_error", false, "job id is not a UUID");
		return;
	}
	f = calloc(1, sizeof *f);
	r->out.outputs = calloc(nfiles, sizeof *r->out.outputs);
	if (f == NULL || r->out.outputs == NULL ||
	    (f->items = calloc(nfiles, sizeof *f->items)) == NULL) {
		free(f);
		run_fail(g, r, "output_error", true, "out of memory");
		return;
	}
	f->fd = -1;
	r->fetch = f;
	for (size_t i = 0; i < nfiles; i++) {
		f->n++;
		if ((f->items[i].url = strdup(urls[i])) == NULL) {
			run_fail(g, r, "output_error", true, "out of memory");
			return;
		}
		media_ext(names[i], f->items[i].ext);
	}
	start_item(g, r);
}

int
outputs_store_bytes(struct genqd *g, struct run *r, size_t index, const void *data,
    size_t len, const char *ext, struct stored_output *o)
{
	char tmp[PATH_MAX], final[PATH_MAX];
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	static const char hex[] = "0123456789abcdef";
	const char *p = data;
	size_t left = len;
	int fd = -1, saved;

	if (store_path(r->job_id, index, ext, o->path, sizeof o->path) < 0) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = store_open_temp(g->cfg->output_dir, r->job_id, index, tmp, sizeof tmp)) < 0)
		return -1;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		p += n;
		left -= (size_t)n;
	}
	if (EVP_Digest(data, len, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != 32) {
		errno = EIO;
		goto fail;
	}
	for (unsigned i = 0; i < 32; i++) {
		o->sha256[2 * i] = hex[digest[i] >> 4];
		o->sha256[2 * i + 1] = hex[digest[i] & 15];
	}
	o->sha256[64] = '\0';
	o->bytes = (int64_t)len;
	media_content_type(NULL, ext, o->content_type);
	if (snprintf(final, sizeof final, "%s/%s", g->cfg->output_dir, o->path) >= (int)sizeof final) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	/* On disk, under its name, before the job says succeeded. */
	if (fsync(fd) < 0 || rename(tmp, final) < 0)
		goto fail;
	close(fd);
	store_sync_folder(g->cfg->output_dir, o->path);
	return 0;
fail:
	saved = errno;
	close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}
