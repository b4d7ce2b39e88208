/* fuzz_comfy: what genqd reads from a ComfyUI backend it does not control
 * (daemon/comfy.c, daemon/media.c, both pure): the reply to POST /prompt,
 * GET /history/{prompt_id} and GET /queue, then, for each output a history
 * lists, the /view URL, the stored extension and the content type. Every
 * parser gets the same input; the seeds hold real replies for the prompt
 * id below.
 *
 * Beyond "no crash, no leak": messages stay within their buffers, and
 * nothing that reaches a URL, a path on disk or a reply header keeps a
 * byte that could change its meaning (see comfy.h and media.h). */
#include "autoconf.h"

#include <string.h>

#include "buf.h"
#include "comfy.h"
#include "fuzz.h"
#include "media.h"

#define PID "0b9f2c1e-8d3a-4c5b-9e6f-7a8b9c0d1e2f"
#define BASE "http://127.0.0.1:8188"

static bool
printable_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void
check_submit(const char *body, size_t len)
{
	static const long statuses[] = { 200, 400, 500 };
	char msg[COMFY_MSG_MAX], small[16];

	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
		enum comfy_submit rc = comfy_parse_submit(statuses[i], body, len, msg, sizeof msg);

		FUZZ_CHECK(rc == (statuses[i] == 200 ? COMFY_SUBMIT_OK :
		    statuses[i] == 400 ? COMFY_SUBMIT_INVALID : COMFY_SUBMIT_ERROR));
		FUZZ_CHECK(memchr(msg, '\0', sizeof msg) != NULL);
	}
	/* A short message buffer is cut, never overrun. */
	comfy_parse_submit(400, body, len, small, sizeof small);
	FUZZ_CHECK(memchr(small, '\0', sizeof small) != NULL);
}

static void
check_file(const struct comfy_file *f, const char *content_type_header)
{
	char ext[MEDIA_EXT_MAX + 1], ctype[MEDIA_TYPE_MAX + 1];
	struct buf url;

	FUZZ_CHECK(f->filename[0] != '\0');
	FUZZ_CHECK(strcmp(f->filename, ".") != 0 && strcmp(f->filename, "..") != 0);
	FUZZ_CHECK(strpbrk(f->filename, "/\\") == NULL);
	for (const char *p = f->type; *p; p++)
		FUZZ_CHECK((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-');

	buf_init(&url, 0);
	if (comfy_view_url(&url, BASE, f) == 0) {
		FUZZ_CHECK(strncmp(url.data, BASE "/view?", strlen(BASE "/view?")) == 0);
		FUZZ_CHECK(printable_ascii(url.data));
	}
	buf_free(&url);

	media_ext(f->filename, ext);
	FUZZ_CHECK(ext[0] != '\0' && strlen(ext) <= MEDIA_EXT_MAX);
	for (const char *p = ext; *p; p++)
		FUZZ_CHECK((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'));

	media_content_type(content_type_header, ext, ctype);
	FUZZ_CHECK(strchr(ctype, '/') != NULL && printable_ascii(ctype));
	FUZZ_CHECK(strstr(ctype, "html") == NULL && strstr(ctype, "xml") == NULL &&
	    strstr(ctype, "svg") == NULL && strstr(ctype, "script") == NULL);
}

static void
check_history(const char *body, size_t len, const char *header)
{
	struct comfy_history h;
	enum comfy_state st = comfy_parse_history(body, len, PID, &h);

	FUZZ_CHECK(st == h.state);
	FUZZ_CHECK(st >= COMFY_PENDING && st <= COMFY_BAD_REPLY);
	FUZZ_CHECK(memchr(h.message, '\0', sizeof h.message) != NULL);
	FUZZ_CHECK(h.nfiles <= COMFY_MAX_FILES);
	FUZZ_CHECK(st == COMFY_SUCCESS || h.nfiles == 0);
	for (size_t i = 0; i < h.nfiles; i++)
		check_file(&h.files[i], header);
	comfy_history_free(&h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t hlen = nl ? (size_t)(nl - data) : size;
	char *header;
	int has;

	check_submit(body, size);
	/* The input up to its first newline doubles as the /view reply's
	 * Content-Type header, which is as untrusted as the body. */
	if ((header = malloc(hlen + 1)) == NULL)
		return 0;
	memcpy(header, data, hlen);
	header[hlen] = '\0';
	check_history(body, size, header);
	free(header);

	has = comfy_queue_has(body, size, PID);
	FUZZ_CHECK(has >= -1 && has <= 1);
	return 0;
}
