/* fuzz_openai: what genqd reads from an OpenAI-compatible backend it does
 * not control, and the job input it sends there (daemon/openai.c, pure):
 * the input's shape and the body built from it, error replies, whole chat
 * completions, event streams (fed in pieces, as libcurl hands them over)
 * and image generations with b64_json. Every reader gets the same input.
 *
 * Beyond "no crash, no leak": messages stay within their buffers, kept text
 * and images stay within their bounds, and results are ones the driver
 * knows how to act on. */
#include "autoconf.h"

#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "openai.h"

#define TEXT_MAX 2048
#define IMAGE_MAX 4096

static void
check_texts(const struct oai_texts *t)
{
	size_t total = 0;

	FUZZ_CHECK(t->n <= OAI_MAX_CHOICES);
	for (size_t i = 0; i < OAI_MAX_CHOICES; i++)
		total += t->text[i].len;
	FUZZ_CHECK(total == t->total && total <= t->max);
	FUZZ_CHECK(memchr(t->finish, '\0', sizeof t->finish) != NULL);
}

static void
check_prepare(const char *body, size_t len)
{
	struct oai_request req;
	struct buf out;
	char msg[OAI_MSG_MAX];

	buf_init(&out, 0);
	msg[0] = '\0';
	if (oai_prepare(body, len, &req, &out, msg, sizeof msg) == 0) {
		FUZZ_CHECK(req.kind == OAI_CHAT || req.kind == OAI_IMAGES);
		FUZZ_CHECK(req.n >= 1 && req.n <= OAI_MAX_IMAGES);
		FUZZ_CHECK(req.max_tokens >= 0);
		FUZZ_CHECK(out.len > 0);
		FUZZ_CHECK(req.kind == OAI_IMAGES || (out.len == len && memcmp(out.data, body, len) == 0));
	} else {
		FUZZ_CHECK(msg[0] != '\0');
	}
	FUZZ_CHECK(memchr(msg, '\0', sizeof msg) != NULL);
	buf_free(&out);
}

static void
check_classify(const char *body, size_t len)
{
	static const long statuses[] = { 400, 404, 422, 429, 500, 503 };
	char msg[OAI_MSG_MAX], small[12];

	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
		enum oai_verdict v = oai_classify(statuses[i], body, len, msg, sizeof msg);

		FUZZ_CHECK(v == (statuses[i] == 404 ? OAI_NO_MODEL :
		    statuses[i] >= 429 ? OAI_RETRY : OAI_INVALID));
		FUZZ_CHECK(strncmp(msg, "HTTP ", 5) == 0);
	}
	oai_classify(500, body, len, small, sizeof small);
	FUZZ_CHECK(memchr(small, '\0', sizeof small) != NULL);
}

static void
check_chat(const char *body, size_t len)
{
	struct oai_texts t;
	char msg[OAI_MSG_MAX];
	enum oai_result rc;

	oai_texts_init(&t, TEXT_MAX);
	msg[0] = '\0';
	rc = oai_parse_chat(body, len, &t, msg, sizeof msg);
	FUZZ_CHECK(rc >= OAI_OK && rc <= OAI_SERVER_ERROR);
	FUZZ_CHECK(rc == OAI_OK ? t.n >= 1 : msg[0] != '\0');
	check_texts(&t);
	oai_texts_free(&t);
}

/* The stream fed in pieces of step bytes. */
static void
check_stream(const char *body, size_t len, size_t step)
{
	struct oai_stream s;
	enum oai_result rc = OAI_OK;
	double p;

	oai_stream_init(&s, TEXT_MAX);
	for (size_t i = 0; i < len && rc == OAI_OK; i += step)
		rc = oai_stream_feed(&s, body + i, len - i < step ? len - i : step);
	if (rc == OAI_OK)
		rc = oai_stream_end(&s);
	FUZZ_CHECK(rc == s.result);
	FUZZ_CHECK(rc >= OAI_OK && rc <= OAI_SERVER_ERROR);
	FUZZ_CHECK(rc == OAI_OK || s.msg[0] != '\0');
	FUZZ_CHECK(memchr(s.msg, '\0', sizeof s.msg) != NULL);
	FUZZ_CHECK(s.line.len <= OAI_LINE_MAX && s.data.len <= OAI_LINE_MAX);
	FUZZ_CHECK(s.chunks >= 0);
	check_texts(&s.texts);
	p = oai_progress(s.chunks, 100);
	FUZZ_CHECK(p >= 0 && p <= 0.99);
	oai_stream_free(&s);
}

static void
check_images(const char *body, size_t len)
{
	struct oai_images im;
	char msg[OAI_MSG_MAX];
	enum oai_result rc = oai_parse_images(body, len, IMAGE_MAX, &im, msg, sizeof msg);

	FUZZ_CHECK(rc >= OAI_OK && rc <= OAI_SERVER_ERROR);
	FUZZ_CHECK(im.n <= OAI_MAX_IMAGES);
	FUZZ_CHECK(rc != OAI_OK || im.n >= 1);
	for (size_t i = 0; i < im.n; i++) {
		FUZZ_CHECK(im.img[i].len <= IMAGE_MAX);
		FUZZ_CHECK(strcmp(im.img[i].ext, "png") == 0 || strcmp(im.img[i].ext, "jpg") == 0 ||
		    strcmp(im.img[i].ext, "webp") == 0 || strcmp(im.img[i].ext, "gif") == 0 ||
		    strcmp(im.img[i].ext, "bin") == 0);
	}
	oai_images_free(&im);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;

	check_prepare(body, size);
	check_classify(body, size);
	check_chat(body, size);
	check_stream(body, size, size > 0 ? size : 1);
	check_stream(body, size, 1);
	check_stream(body, size, 7);
	check_images(body, size);
	return 0;
}
