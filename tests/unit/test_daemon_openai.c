/* Unit tests: genqd's OpenAI-compatible protocol (daemon/openai.c): the
 * input's shape, error classification, whole and streamed chat replies,
 * b64_json images, including hostile replies. */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/openai.c"

#define MAX_TEXT 4096

static enum oai_result
chat(const char *doc, struct oai_texts *t, char *msg, size_t msglen)
{
	oai_texts_init(t, MAX_TEXT);
	return oai_parse_chat(doc, strlen(doc), t, msg, msglen);
}

static const char *
text_of(struct oai_texts *t, size_t i)
{
	return t->text[i].data != NULL ? t->text[i].data : "";
}

/* Feed doc in pieces of step bytes. */
static enum oai_result
stream(struct oai_stream *s, const char *doc, size_t step, size_t max)
{
	size_t len = strlen(doc);

	oai_stream_init(s, max);
	for (size_t i = 0; i < len; i += step) {
		size_t n = len - i < step ? len - i : step;
		if (oai_stream_feed(s, doc + i, n) != OAI_OK)
			return s->result;
	}
	return oai_stream_end(s);
}

/* ---- the input ---- */

START_TEST(prepare_chat)
{
	struct oai_request req;
	struct buf out;
	char msg[256] = "";
	const char *in = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
	    "\"stream\":true,\"max_tokens\":50,\"max_completion_tokens\":40}";

	buf_init(&out, 0);
	ck_assert_int_eq(oai_prepare(in, strlen(in), &req, &out, msg, sizeof msg), 0);
	ck_assert_int_eq(req.kind, OAI_CHAT);
	ck_assert(req.stream);
	ck_assert_int_eq(req.max_tokens, 40);
	ck_assert_int_eq(req.n, 1);
	ck_assert_str_eq(out.data, in);          /* sent as the user wrote it */
	buf_free(&out);
}
END_TEST

START_TEST(prepare_images_forces_b64)
{
	struct oai_request req;
	struct buf out;
	struct json_object *o;
	char msg[256] = "";
	const char *in = "{\"prompt\":\"a cat\",\"n\":2,\"response_format\":\"url\"}";

	buf_init(&out, 0);
	ck_assert_int_eq(oai_prepare(in, strlen(in), &req, &out, msg, sizeof msg), 0);
	ck_assert_int_eq(req.kind, OAI_IMAGES);
	ck_assert_int_eq(req.n, 2);
	o = gq_json_parse(out.data, out.len, 8, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(gq_json_str(o, "response_format"), "b64_json");
	ck_assert_str_eq(gq_json_str(o, "prompt"), "a cat");
	json_object_put(o);
	buf_free(&out);
}
END_TEST

START_TEST(prepare_refuses)
{
	static const char *const bad[] = {
		"", "[]", "not json", "{\"model\":\"m\"}", "{\"messages\":{}}",
		"{\"messages\":[],\"stream\":\"yes\"}", "{\"messages\":[],\"max_tokens\":0}",
		"{\"messages\":[],\"max_tokens\":1.5}", "{\"messages\":[],\"n\":99}",
		"{\"prompt\":7}", "{\"prompt\":\"x\",\"n\":0}", "{\"prompt\":\"x\",\"stream\":true}",
	};
	struct oai_request req;
	struct buf out;
	char msg[256];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		buf_init(&out, 0);
		msg[0] = '\0';
		ck_assert_msg(oai_prepare(bad[i], strlen(bad[i]), &req, &out, msg, sizeof msg) == -1,
		    "accepted %s", bad[i]);
		ck_assert_msg(msg[0] != '\0', "no reason for %s", bad[i]);
		buf_free(&out);
	}
}
END_TEST

START_TEST(urls)
{
	struct buf u;

	buf_init(&u, 0);
	oai_url(&u, "http://h:1", "/chat/completions");
	ck_assert_str_eq(u.data, "http://h:1/v1/chat/completions");
	buf_reset(&u);
	oai_url(&u, "http://h:1/v1/", "/models");
	ck_assert_str_eq(u.data, "http://h:1/v1/models");
	buf_reset(&u);
	oai_url(&u, "http://h:1/openai//", "/images/generations");
	ck_assert_str_eq(u.data, "http://h:1/openai/v1/images/generations");
	buf_free(&u);
}
END_TEST

/* ---- errors ---- */

START_TEST(classify)
{
	char msg[256];
	const char *oa = "{\"error\":{\"message\":\"The model `x` does not exist\",\"type\":"
	    "\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}";
	const char *vllm = "{\"object\":\"error\",\"message\":\"bad temperature\",\"type\":"
	    "\"BadRequestError\",\"code\":400}";
	const char *llama = "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":"
	    "\"unavailable_error\"}}";

	ck_assert_int_eq(oai_classify(404, oa, strlen(oa), msg, sizeof msg), OAI_NO_MODEL);
	ck_assert_str_eq(msg, "HTTP 404: The model `x` does not exist");
	ck_assert_int_eq(oai_classify(400, vllm, strlen(vllm), msg, sizeof msg), OAI_INVALID);
	ck_assert_str_eq(msg, "HTTP 400: bad temperature");
	ck_assert_int_eq(oai_classify(503, llama, strlen(llama), msg, sizeof msg), OAI_RETRY);
	ck_assert_str_eq(msg, "HTTP 503: Loading model");
	ck_assert_int_eq(oai_classify(500, "<html>", 6, msg, sizeof msg), OAI_RETRY);
	ck_assert_str_eq(msg, "HTTP 500");
	ck_assert_int_eq(oai_classify(429, "", 0, msg, sizeof msg), OAI_RETRY);
	ck_assert_int_eq(oai_classify(422, "{\"error\":5}", 11, msg, sizeof msg), OAI_INVALID);
	ck_assert_int_eq(oai_classify(413, "", 0, msg, sizeof msg), OAI_INVALID);
}
END_TEST

/* A message JSON spells as an empty C string is no message: the next place
 * one may be is used, else the reply reads as having none (CI's fuzzer
 * found "\u0000..." leaving a failed chat without any message). */
START_TEST(error_message_empty)
{
	struct oai_texts t;
	char msg[256];
	const char *nul = "{\"error\":{\"message\":\"\\u0000hidden\"}}";
	const char *fallback = "{\"error\":{\"message\":\"\"},\"message\":\"outer\"}";

	ck_assert_int_eq(oai_classify(400, nul, strlen(nul), msg, sizeof msg), OAI_INVALID);
	ck_assert_str_eq(msg, "HTTP 400");
	ck_assert_int_eq(oai_classify(400, fallback, strlen(fallback), msg, sizeof msg), OAI_INVALID);
	ck_assert_str_eq(msg, "HTTP 400: outer");
	ck_assert_int_ne(chat(nul, &t, msg, sizeof msg), OAI_OK);
	ck_assert_str_ne(msg, "");
	oai_texts_free(&t);
}
END_TEST

/* ---- whole replies ---- */

START_TEST(chat_reply)
{
	struct oai_texts t;
	char msg[256];
	const char *doc = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,"
	    "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	    "\"content\":\"Hello \\u00e9\"},\"finish_reason\":\"stop\"},{\"index\":1,\"message\":"
	    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},\"finish_reason\":"
	    "\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
	    "\"total_tokens\":5}}";

	ck_assert_int_eq(chat(doc, &t, msg, sizeof msg), OAI_OK);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_str_eq(text_of(&t, 0), "Hello \xc3\xa9");
	ck_assert_str_eq(text_of(&t, 1), "");
	ck_assert_str_eq(t.finish, "stop");
	ck_assert_int_eq(t.tokens, 2);
	oai_texts_free(&t);
}
END_TEST

START_TEST(chat_hostile)
{
	static const char *const bad[] = {
		"", "null", "[]", "{", "{\"choices\":[]}", "{\"choices\":{}}",
		"{\"choices\":[{\"index\":0}]}",
		"{\"choices\":[{\"index\":0,\"message\":{\"content\":[1,2]}}]}",
		"{\"choices\":[{\"index\":99,\"message\":{\"content\":\"x\"}}]}",
		"{\"choices\":[{\"index\":-1,\"message\":{\"content\":\"x\"}}]}",
		"{\"choices\":[7,\"x\",null]}",
		"{\"choices\":[{\"message\":{\"content\":\"a\"}}]}trailing",
	};
	struct oai_texts t;
	char msg[256];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		msg[0] = '\0';
		ck_assert_msg(chat(bad[i], &t, msg, sizeof msg) == OAI_BAD_REPLY, "accepted %s", bad[i]);
		ck_assert(msg[0] != '\0');
		oai_texts_free(&t);
	}
	ck_assert_int_eq(chat("{\"error\":{\"message\":\"boom\"}}", &t, msg, sizeof msg),
	    OAI_SERVER_ERROR);
	ck_assert_str_eq(msg, "boom");
	oai_texts_free(&t);
}
END_TEST

START_TEST(chat_too_large)
{
	struct oai_texts t;
	char msg[256], *doc = malloc(MAX_TEXT + 200);

	snprintf(doc, 80, "{\"choices\":[{\"message\":{\"content\":\"");
	memset(doc + strlen(doc), 'a', MAX_TEXT + 1);
	strcpy(doc + strlen("{\"choices\":[{\"message\":{\"content\":\"") + MAX_TEXT + 1, "\"}}]}");
	ck_assert_int_eq(chat(doc, &t, msg, sizeof msg), OAI_TOO_LARGE);
	oai_texts_free(&t);
	free(doc);
}
END_TEST

/* ---- streams ---- */

#define CHUNK(content) "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":" \
	"[{\"index\":0,\"delta\":{\"content\":\"" content "\"},\"finish_reason\":null}]}\n\n"
static const char STREAM[] =
    ": keep-alive comment\n\n"
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    CHUNK("The") CHUNK(" quick") CHUNK(" fox")
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":3,\"total_tokens\":8}}\n\n"
    "data: [DONE]\n\n";

START_TEST(stream_whole_and_split)
{
	struct oai_stream s;

	/* Every split, down to one byte at a time, gives the same result. */
	for (size_t step = 1; step <= sizeof STREAM; step += (step < 8 ? 1 : 97)) {
		ck_assert_int_eq(stream(&s, STREAM, step, MAX_TEXT), OAI_OK);
		ck_assert(s.done);
		ck_assert_str_eq(text_of(&s.texts, 0), "The quick fox");
		ck_assert_uint_eq(s.texts.n, 1);
		ck_assert_int_eq(s.chunks, 3);
		ck_assert_int_eq(s.texts.tokens, 3);
		ck_assert_str_eq(s.texts.finish, "length");
		oai_stream_free(&s);
	}
}
END_TEST

START_TEST(stream_crlf_and_multiline_data)
{
	struct oai_stream s;
	const char *doc =
	    "event: message\r\nid: 1\r\ndata: {\"choices\":[{\"index\":0,\r\n"
	    "data: \"delta\":{\"content\":\"a\\nb\"}}]}\r\n\r\n"
	    "data:{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"second\"},"
	    "\"finish_reason\":\"stop\"}]}\r\n\r\n";

	ck_assert_int_eq(stream(&s, doc, 3, MAX_TEXT), OAI_OK);
	ck_assert(!s.done);                      /* ended by finish_reason, no [DONE] */
	ck_assert_str_eq(text_of(&s.texts, 0), "a\nb");
	ck_assert_str_eq(text_of(&s.texts, 1), "second");
	ck_assert_uint_eq(s.texts.n, 2);
	ck_assert_int_eq(s.texts.tokens, 2);
	oai_stream_free(&s);
}
END_TEST

START_TEST(stream_errors)
{
	struct oai_stream s;

	ck_assert_int_eq(stream(&s, CHUNK("a") "data: {\"error\":{\"message\":\"oops\","
	    "\"type\":\"server_error\"}}\n\n", 5, MAX_TEXT), OAI_SERVER_ERROR);
	ck_assert_str_eq(s.msg, "error event: oops");
	oai_stream_free(&s);
	ck_assert_int_eq(stream(&s, CHUNK("a") "error: {\"code\":500,\"message\":\"llama died\"}\n\n",
	    5, MAX_TEXT), OAI_SERVER_ERROR);
	ck_assert_str_eq(s.msg, "error event: llama died");
	oai_stream_free(&s);
	/* Cut off before the end: not a complete answer. */
	ck_assert_int_eq(stream(&s, CHUNK("a") CHUNK("b"), 7, MAX_TEXT), OAI_BAD_REPLY);
	oai_stream_free(&s);
	ck_assert_int_eq(stream(&s, "data: {not json}\n\n", 4, MAX_TEXT), OAI_BAD_REPLY);
	oai_stream_free(&s);
	ck_assert_int_eq(stream(&s, "data: [1,2]\n\n", 4, MAX_TEXT), OAI_BAD_REPLY);
	oai_stream_free(&s);
	ck_assert_int_eq(stream(&s, "data: {\"choices\":[{\"delta\":{\"content\":7}}]}\n\n", 4,
	    MAX_TEXT), OAI_BAD_REPLY);
	oai_stream_free(&s);
	ck_assert_int_eq(stream(&s, "data: [DONE]\n\n", 4, MAX_TEXT), OAI_BAD_REPLY);
	oai_stream_free(&s);
	ck_assert_int_eq(stream(&s, "", 1, MAX_TEXT), OAI_BAD_REPLY);
	oai_stream_free(&s);
	/* An error body (non-200) holds no events. */
	ck_assert_int_eq(stream(&s, "{\"error\": {\"message\": \"x\"}}", 4, MAX_TEXT), OAI_BAD_REPLY);
	ck_assert(!s.done);
	oai_stream_free(&s);
	/* Text beyond the bound. */
	ck_assert_int_eq(stream(&s, CHUNK("0123456789") CHUNK("0123456789"), 9, 15), OAI_TOO_LARGE);
	oai_stream_free(&s);
	/* Nothing counts after [DONE]. */
	ck_assert_int_eq(stream(&s, CHUNK("a") "data: [DONE]\n\n" CHUNK("b") "data: junk\n\n", 9,
	    MAX_TEXT), OAI_OK);
	ck_assert_str_eq(text_of(&s.texts, 0), "a");
	oai_stream_free(&s);
}
END_TEST

START_TEST(stream_endless_line)
{
	struct oai_stream s;
	size_t n = 1 << 16, fed = 0;
	char *junk = malloc(n);
	enum oai_result rc = OAI_OK;

	memset(junk, 'x', n);
	oai_stream_init(&s, MAX_TEXT);
	while (rc == OAI_OK && fed <= OAI_LINE_MAX + n) {
		rc = oai_stream_feed(&s, junk, n);
		fed += n;
	}
	ck_assert_int_eq(rc, OAI_BAD_REPLY);
	ck_assert(s.line.len <= OAI_LINE_MAX);
	oai_stream_free(&s);
	free(junk);
}
END_TEST

START_TEST(progress)
{
	ck_assert(oai_progress(5, 0) < 0);
	ck_assert(oai_progress(0, 10) == 0);
	ck_assert(oai_progress(5, 10) == 0.5);
	ck_assert(oai_progress(10, 10) == 0.99);
	ck_assert(oai_progress(50, 10) == 0.99);
}
END_TEST

/* ---- images ---- */

/* A 1x1 PNG, and its base64. */
static const unsigned char PNG1[] = {
	0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
	0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00,
	0x00, 0x90, 0x77, 0x53, 0xde,
};
static const char PNG1_B64[] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1Pe";

START_TEST(images_decode)
{
	struct oai_images im;
	char msg[256], doc[512];

	snprintf(doc, sizeof doc, "{\"created\":1,\"data\":[{\"b64_json\":\"%s\"},"
	    "{\"b64_json\":\"%.20s\\n%s\",\"revised_prompt\":\"x\"},{\"b64_json\":\"QUJD\"},"
	    "{\"b64_json\":\"QUI=\"}]}", PNG1_B64, PNG1_B64, PNG1_B64 + 20);
	ck_assert_int_eq(oai_parse_images(doc, strlen(doc), 1000, &im, msg, sizeof msg), OAI_OK);
	ck_assert_uint_eq(im.n, 4);
	for (int i = 0; i < 2; i++) {
		ck_assert_uint_eq(im.img[i].len, sizeof PNG1);
		ck_assert(memcmp(im.img[i].data, PNG1, sizeof PNG1) == 0);
		ck_assert_str_eq(im.img[i].ext, "png");
	}
	ck_assert_uint_eq(im.img[2].len, 3);
	ck_assert(memcmp(im.img[2].data, "ABC", 3) == 0);
	ck_assert_str_eq(im.img[2].ext, "bin");
	ck_assert_uint_eq(im.img[3].len, 2);           /* padding is not data */
	oai_images_free(&im);
}
END_TEST

START_TEST(images_hostile)
{
	static const char *const bad[] = {
		"", "{}", "{\"data\":[]}", "{\"data\":{}}", "{\"data\":[1]}",
		"{\"data\":[{\"url\":\"http://x/y.png\"}]}", "{\"data\":[{\"b64_json\":\"\"}]}",
		"{\"data\":[{\"b64_json\":\"abc\"}]}", "{\"data\":[{\"b64_json\":\"a*c=\"}]}",
		"{\"data\":[{\"b64_json\":\"QUJD\"},{\"b64_json\":7}]}",
	};
	const char *big = "{\"data\":[{\"b64_json\":\"QUJDRA==\"}]}";
	const char *err = "{\"error\":{\"message\":\"nsfw\"}}";
	struct oai_images im;
	char msg[256];

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		msg[0] = '\0';
		ck_assert_msg(oai_parse_images(bad[i], strlen(bad[i]), 1000, &im, msg, sizeof msg) ==
		    OAI_BAD_REPLY, "accepted %s", bad[i]);
		ck_assert(msg[0] != '\0');
		oai_images_free(&im);
	}
	ck_assert_int_eq(oai_parse_images(big, strlen(big), 3, &im, msg, sizeof msg), OAI_TOO_LARGE);
	oai_images_free(&im);
	ck_assert_int_eq(oai_parse_images(err, strlen(err), 3, &im, msg, sizeof msg),
	    OAI_SERVER_ERROR);
	oai_images_free(&im);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("daemon_openai");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, prepare_chat);
	tcase_add_test(tc, prepare_images_forces_b64);
	tcase_add_test(tc, prepare_refuses);
	tcase_add_test(tc, urls);
	tcase_add_test(tc, classify);
	tcase_add_test(tc, error_message_empty);
	tcase_add_test(tc, chat_reply);
	tcase_add_test(tc, chat_hostile);
	tcase_add_test(tc, chat_too_large);
	tcase_add_test(tc, stream_whole_and_split);
	tcase_add_test(tc, stream_crlf_and_multiline_data);
	tcase_add_test(tc, stream_errors);
	tcase_add_test(tc, stream_endless_line);
	tcase_add_test(tc, progress);
	tcase_add_test(tc, images_decode);
	tcase_add_test(tc, images_hostile);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
