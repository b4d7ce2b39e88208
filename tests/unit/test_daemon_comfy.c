/* Unit tests: genqd's ComfyUI protocol (daemon/comfy.c) and output naming
 * (daemon/media.c), including hostile replies. */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/comfy.c"
#include "../../daemon/media.c"

#define PID "0b9f2c1e-8d3a-4c5b-9e6f-7a8b9c0d1e2f"

static enum comfy_state
history(const char *doc, struct comfy_history *h)
{
	return comfy_parse_history(doc, strlen(doc), PID, h);
}

/* ---- POST /prompt replies ---- */

START_TEST(submit_ok)
{
	char msg[256];
	const char *body = "{\"prompt_id\": \"" PID "\", \"number\": 7, \"node_errors\": {}}";

	ck_assert_int_eq(comfy_parse_submit(200, body, strlen(body), msg, sizeof msg),
	    COMFY_SUBMIT_OK);
	/* A 200 is a queued prompt whatever its body says. */
	ck_assert_int_eq(comfy_parse_submit(200, "garbage", 7, msg, sizeof msg), COMFY_SUBMIT_OK);
}
END_TEST

START_TEST(submit_validation)
{
	char msg[1024];
	const char *body =
	    "{\"error\": {\"type\": \"prompt_outputs_failed_validation\", "
	    "\"message\": \"Prompt outputs failed validation\", \"details\": \"\", \"extra_info\": {}}, "
	    "\"node_errors\": {\"4\": {\"errors\": [{\"type\": \"value_not_in_list\", "
	    "\"message\": \"Value not in list\", \"details\": \"ckpt_name: 'x' not in [...]\", "
	    "\"extra_info\": {}}], \"dependent_outputs\": [\"9\"], "
	    "\"class_type\": \"CheckpointLoaderSimple\"}}}";

	ck_assert_int_eq(comfy_parse_submit(400, body, strlen(body), msg, sizeof msg),
	    COMFY_SUBMIT_INVALID);
	ck_assert_ptr_nonnull(strstr(msg, "Prompt outputs failed validation"));
	ck_assert_ptr_nonnull(strstr(msg, "node 4 (CheckpointLoaderSimple)"));
	ck_assert_ptr_nonnull(strstr(msg, "Value not in list: ckpt_name: 'x' not in [...]"));
}
END_TEST

START_TEST(submit_old_style_error)
{
	char msg[256];
	const char *body = "{\"error\": \"no prompt\", \"node_errors\": []}";

	ck_assert_int_eq(comfy_parse_submit(400, body, strlen(body), msg, sizeof msg),
	    COMFY_SUBMIT_INVALID);
	ck_assert_str_eq(msg, "no prompt");
}
END_TEST

START_TEST(submit_other_answers)
{
	char msg[256];

	ck_assert_int_eq(comfy_parse_submit(400, "<html>", 6, msg, sizeof msg), COMFY_SUBMIT_INVALID);
	ck_assert_ptr_nonnull(strstr(msg, "HTTP 400"));
	ck_assert_int_eq(comfy_parse_submit(400, "", 0, msg, sizeof msg), COMFY_SUBMIT_INVALID);
	ck_assert_int_eq(comfy_parse_submit(500, "oops", 4, msg, sizeof msg), COMFY_SUBMIT_ERROR);
	ck_assert_ptr_nonnull(strstr(msg, "HTTP 500"));
	ck_assert_int_eq(comfy_parse_submit(404, "", 0, msg, sizeof msg), COMFY_SUBMIT_ERROR);
	/* Wrong types everywhere: still a validation error, still a message. */
	{
		const char *body = "{\"error\": 5, \"node_errors\": {\"1\": 3, \"2\": {\"errors\": "
		    "[1, {\"message\": 2}], \"class_type\": []}}}";
		ck_assert_int_eq(comfy_parse_submit(400, body, strlen(body), msg, sizeof msg),
		    COMFY_SUBMIT_INVALID);
		ck_assert_ptr_nonnull(strstr(msg, "node 2"));
	}
}
END_TEST

START_TEST(submit_message_bounded)
{
	struct buf b;
	char msg[128];

	buf_init(&b, 0);
	buf_printf(&b, "{\"error\": {\"message\": \"bad\"}, \"node_errors\": {");
	for (int i = 0; i < 2000; i++)
		buf_printf(&b, "%s\"%d\": {\"errors\": [{\"message\": \"%0200d\"}]}", i ? "," : "", i, i);
	buf_printf(&b, "}}");
	memset(msg, 'x', sizeof msg);
	ck_assert_int_eq(comfy_parse_submit(400, b.data, b.len, msg, sizeof msg),
	    COMFY_SUBMIT_INVALID);
	ck_assert_uint_lt(strlen(msg), sizeof msg);
	ck_assert_ptr_nonnull(strstr(msg, "bad; node 0"));
	buf_free(&b);
}
END_TEST

START_TEST(submit_body_shape)
{
	struct buf b;
	struct json_object *o, *p;
	const char *input = "{\"3\": {\"class_type\": \"KSampler\", \"inputs\": {\"seed\": 1}}}";

	buf_init(&b, 0);
	ck_assert_int_eq(comfy_submit_body(&b, input, strlen(input), "host:\"1\"", PID), 0);
	o = gq_json_parse(b.data, b.len, 16, NULL);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(gq_json_str(o, "client_id"), "host:\"1\"");
	ck_assert_str_eq(gq_json_str(o, "prompt_id"), PID);
	ck_assert(json_object_object_get_ex(o, "prompt", &p));
	ck_assert(json_object_is_type(p, json_type_object));
	json_object_put(o);
	buf_free(&b);
}
END_TEST

/* ---- GET /history/{id} ---- */

START_TEST(history_pending)
{
	struct comfy_history h;

	ck_assert_int_eq(history("{}", &h), COMFY_PENDING);
	comfy_history_free(&h);
	ck_assert_int_eq(history("{\"someone-else\": {\"status\": {\"status_str\": \"success\"}}}", &h),
	    COMFY_PENDING);
	comfy_history_free(&h);
}
END_TEST

START_TEST(history_success_outputs)
{
	struct comfy_history h;
	const char *doc = "{\"" PID "\": {\"prompt\": [1, \"" PID "\", {}, {}, [\"9\"]], "
	    "\"outputs\": {"
	    "\"9\": {\"images\": [{\"filename\": \"ComfyUI_00001_.png\", \"subfolder\": \"\", \"type\": \"output\"},"
	    "                   {\"filename\": \"ComfyUI_00002_.png\", \"subfolder\": \"batch\", \"type\": \"output\"}]},"
	    "\"12\": {\"gifs\": [{\"filename\": \"clip.mp4\", \"subfolder\": \"video\", \"type\": \"output\", \"format\": \"video/h264-mp4\"}],"
	    "        \"text\": [\"just a string\"]},"
	    "\"15\": {\"audio\": [{\"filename\": \"a.flac\", \"type\": \"temp\"}], \"animated\": [false]}},"
	    "\"status\": {\"status_str\": \"success\", \"completed\": true, \"messages\": ["
	    "[\"execution_start\", {\"prompt_id\": \"" PID "\", \"timestamp\": 1700000000000}],"
	    "[\"execution_cached\", {\"nodes\": [], \"prompt_id\": \"" PID "\", \"timestamp\": 1700000000001}],"
	    "[\"execution_success\", {\"prompt_id\": \"" PID "\", \"timestamp\": 1700000002500}]]},"
	    "\"meta\": {}}}";

	ck_assert_int_eq(history(doc, &h), COMFY_SUCCESS);
	ck_assert_uint_eq(h.nfiles, 4);
	ck_assert_str_eq(h.files[0].filename, "ComfyUI_00001_.png");
	ck_assert_str_eq(h.files[1].subfolder, "batch");
	ck_assert_str_eq(h.files[2].filename, "clip.mp4");
	ck_assert_str_eq(h.files[3].filename, "a.flac");
	ck_assert_str_eq(h.files[3].subfolder, "");
	ck_assert_str_eq(h.files[3].type, "temp");
	ck_assert_int_eq(h.end_ms - h.start_ms, 2500);
	ck_assert(!h.files_truncated);
	comfy_history_free(&h);
}
END_TEST

START_TEST(history_success_no_outputs)
{
	struct comfy_history h;

	ck_assert_int_eq(history("{\"" PID "\": {\"outputs\": {}, \"status\": {\"status_str\": \"success\"}}}", &h),
	    COMFY_SUCCESS);
	ck_assert_uint_eq(h.nfiles, 0);
	comfy_history_free(&h);
	/* Old builds: no status at all, outputs present. */
	ck_assert_int_eq(history("{\"" PID "\": {\"outputs\": {\"1\": {\"images\": [{\"filename\": \"x.png\"}]}}}}", &h),
	    COMFY_SUCCESS);
	ck_assert_uint_eq(h.nfiles, 1);
	ck_assert_str_eq(h.files[0].type, "output");
	comfy_history_free(&h);
}
END_TEST

START_TEST(history_hostile_file_names)
{
	struct comfy_history h;
	const char *doc = "{\"" PID "\": {\"outputs\": {\"1\": {\"images\": ["
	    "{\"filename\": \"../../etc/passwd\"}, {\"filename\": \"a/b.png\"}, {\"filename\": \"\"},"
	    "{\"filename\": \"..\"}, {\"filename\": \"ok.png\", \"type\": \"out put\"},"
	    "{\"filename\": \"c\\\\d.png\"}, {\"filename\": \"e\\u0001.png\"}, {\"filename\": 5},"
	    "{\"filename\": \"fine.png\", \"subfolder\": \"x/../y\", \"type\": \"output\"}]}},"
	    "\"status\": {\"status_str\": \"success\"}}}";

	ck_assert_int_eq(history(doc, &h), COMFY_SUCCESS);
	ck_assert_uint_eq(h.nfiles, 1);
	ck_assert_str_eq(h.files[0].filename, "fine.png");
	/* The subfolder goes to the backend percent-encoded; /view judges it. */
	ck_assert_str_eq(h.files[0].subfolder, "x/../y");
	comfy_history_free(&h);
}
END_TEST

START_TEST(history_file_cap)
{
	struct comfy_history h;
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "{\"" PID "\": {\"status\": {\"status_str\": \"success\"}, \"outputs\": {\"1\": {\"images\": [");
	for (int i = 0; i < 300; i++)
		buf_printf(&b, "%s{\"filename\": \"%d.png\"}", i ? "," : "", i);
	buf_printf(&b, "]}}}}");
	ck_assert_int_eq(comfy_parse_history(b.data, b.len, PID, &h), COMFY_SUCCESS);
	ck_assert_uint_eq(h.nfiles, COMFY_MAX_FILES);
	ck_assert(h.files_truncated);
	comfy_history_free(&h);
	buf_free(&b);
}
END_TEST

START_TEST(history_execution_error)
{
	struct comfy_history h;
	const char *doc = "{\"" PID "\": {\"outputs\": {}, \"status\": {\"status_str\": \"error\", "
	    "\"completed\": false, \"messages\": ["
	    "[\"execution_start\", {\"prompt_id\": \"" PID "\", \"timestamp\": 10}],"
	    "[\"execution_error\", {\"prompt_id\": \"" PID "\", \"node_id\": \"3\", \"node_type\": \"KSampler\", "
	    "\"exception_type\": \"RuntimeError\", \"exception_message\": \"mat1 and mat2 shapes cannot be multiplied\", "
	    "\"traceback\": [\"...\"], \"timestamp\": 20}]]}}}";

	ck_assert_int_eq(history(doc, &h), COMFY_FAILED);
	ck_assert_str_eq(h.message, "KSampler (node 3): RuntimeError: mat1 and mat2 shapes cannot be multiplied");
	ck_assert_int_eq(h.end_ms - h.start_ms, 10);
	comfy_history_free(&h);
}
END_TEST

START_TEST(history_oom)
{
	struct comfy_history h;
	const char *by_type = "{\"" PID "\": {\"status\": {\"status_str\": \"error\", \"messages\": ["
	    "[\"execution_error\", {\"exception_type\": \"torch.cuda.OutOfMemoryError\", "
	    "\"exception_message\": \"CUDA error\"}]]}}}";
	const char *by_text = "{\"" PID "\": {\"status\": {\"status_str\": \"error\", \"messages\": ["
	    "[\"execution_error\", {\"exception_type\": \"RuntimeError\", "
	    "\"exception_message\": \"Allocation on device 0 would exceed allowed memory. (Out Of Memory)\"}]]}}}";

	ck_assert_int_eq(history(by_type, &h), COMFY_OOM);
	comfy_history_free(&h);
	ck_assert_int_eq(history(by_text, &h), COMFY_OOM);
	comfy_history_free(&h);
}
END_TEST

START_TEST(history_interrupted)
{
	struct comfy_history h;
	const char *doc = "{\"" PID "\": {\"status\": {\"status_str\": \"error\", \"completed\": false, \"messages\": ["
	    "[\"execution_start\", {\"timestamp\": 1}],"
	    "[\"execution_interrupted\", {\"prompt_id\": \"" PID "\", \"node_id\": \"3\", \"node_type\": \"KSampler\", "
	    "\"executed\": [], \"timestamp\": 2}]]}}}";

	ck_assert_int_eq(history(doc, &h), COMFY_INTERRUPTED);
	comfy_history_free(&h);
	/* An error with no messages at all is still an execution failure. */
	ck_assert_int_eq(history("{\"" PID "\": {\"status\": {\"status_str\": \"error\"}}}", &h), COMFY_FAILED);
	comfy_history_free(&h);
}
END_TEST

START_TEST(history_hostile)
{
	static const char *const docs[] = {
		"", "not json", "[]", "null", "\"" PID "\"", "{\"" PID "\": 5}",
		"{\"" PID "\": []}", "{\"" PID "\": {}}", "{\"" PID "\": {\"status\": 7}}",
		"{\"" PID "\": {\"status\": {\"status_str\": 1}}}",
		"{\"" PID "\": {\"status\": {\"status_str\": \"success\"}, \"outputs\": []}}",
		"{\"" PID "\": {\"status\": {\"status_str\": \"success\"}, \"outputs\": {\"1\": 5, \"2\": {\"images\": 5}, \"3\": {\"images\": [5, null, [1]]}}}}",
		"{\"" PID "\": {\"status\": {\"status_str\": \"error\", \"messages\": 5}}}",
		"{\"" PID "\": {\"status\": {\"status_str\": \"error\", \"messages\": [5, [], [1, 2], [\"execution_error\", 5], [\"execution_error\", {\"exception_message\": 5, \"timestamp\": \"x\"}]]}}}",
		"{\"" PID "\": {\"status\": {\"status_str\": \"weird\"}}}",
		"{\"" PID "\": {\"status\": {\"status_str\": \"success\"",
		"{\"" PID "\": {}} trailing",
		"{\"a\": \"\xff\xfe\"}",
	};
	struct comfy_history h;
	struct buf deep;

	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		enum comfy_state s = history(docs[i], &h);
		ck_assert(s == COMFY_BAD_REPLY || s == COMFY_SUCCESS || s == COMFY_FAILED);
		ck_assert_uint_lt(strlen(h.message), sizeof h.message);
		comfy_history_free(&h);
	}
	/* Far deeper than any real reply: refused, not recursed into. */
	buf_init(&deep, 0);
	buf_printf(&deep, "{\"" PID "\": ");
	for (int i = 0; i < 100000; i++)
		buf_append(&deep, "[", 1);
	ck_assert_int_eq(comfy_parse_history(deep.data, deep.len, PID, &h), COMFY_BAD_REPLY);
	comfy_history_free(&h);
	buf_free(&deep);
}
END_TEST

START_TEST(history_huge_message)
{
	struct comfy_history h;
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "{\"" PID "\": {\"status\": {\"status_str\": \"error\", \"messages\": ["
	    "[\"execution_error\", {\"exception_type\": \"E\", \"exception_message\": \"");
	for (int i = 0; i < 100000; i++)
		buf_append(&b, "\\u00e9", 6);
	buf_printf(&b, "\"}]]}}}");
	ck_assert_int_eq(comfy_parse_history(b.data, b.len, PID, &h), COMFY_FAILED);
	ck_assert_uint_lt(strlen(h.message), sizeof h.message);
	comfy_history_free(&h);
	buf_free(&b);
}
END_TEST

/* ---- GET /queue, bodies, URLs ---- */

START_TEST(queue_lookup)
{
	const char *running = "{\"queue_running\": [[3, \"" PID "\", {}, {}, []]], \"queue_pending\": []}";
	const char *pending = "{\"queue_running\": [], \"queue_pending\": [[9, \"x\", {}], [4, \"" PID "\", {}, {}, []]]}";
	const char *absent = "{\"queue_running\": [[1, \"y\"]], \"queue_pending\": [[2, \"z\"], 5, [], [1, 2]]}";

	ck_assert_int_eq(comfy_queue_has(running, strlen(running), PID), 1);
	ck_assert_int_eq(comfy_queue_has(pending, strlen(pending), PID), 1);
	ck_assert_int_eq(comfy_queue_has(absent, strlen(absent), PID), 0);
	ck_assert_int_eq(comfy_queue_has("{}", 2, PID), -1);
	ck_assert_int_eq(comfy_queue_has("[", 1, PID), -1);
	ck_assert_int_eq(comfy_queue_has("{\"queue_running\": 5}", 20, PID), -1);
}
END_TEST

START_TEST(stop_bodies)
{
	struct buf b;

	buf_init(&b, 0);
	ck_assert_int_eq(comfy_interrupt_body(&b, PID), 0);
	ck_assert_str_eq(b.data, "{\"prompt_id\":\"" PID "\"}");
	buf_reset(&b);
	ck_assert_int_eq(comfy_delete_body(&b, PID), 0);
	ck_assert_str_eq(b.data, "{\"delete\":[\"" PID "\"]}");
	buf_free(&b);
}
END_TEST

START_TEST(view_url)
{
	struct buf b;
	struct comfy_file f;

	buf_init(&b, 0);
	snprintf(f.filename, sizeof f.filename, "my image&x=1.png");
	snprintf(f.subfolder, sizeof f.subfolder, "a/b");
	snprintf(f.type, sizeof f.type, "output");
	ck_assert_int_eq(comfy_view_url(&b, "http://127.0.0.1:8188/", &f), 0);
	ck_assert_str_eq(b.data,
	    "http://127.0.0.1:8188/view?filename=my%20image%26x%3D1.png&subfolder=a%2Fb&type=output");
	buf_free(&b);
}
END_TEST

/* ---- media: extensions and content types ---- */

START_TEST(extensions)
{
	char ext[MEDIA_EXT_MAX + 1];

	media_ext("ComfyUI_00001_.PNG", ext);
	ck_assert_str_eq(ext, "png");
	media_ext("clip.tar.gz", ext);
	ck_assert_str_eq(ext, "gz");
	media_ext("noext", ext);
	ck_assert_str_eq(ext, "bin");
	media_ext("trailing.", ext);
	ck_assert_str_eq(ext, "bin");
	media_ext(".hidden", ext);
	ck_assert_str_eq(ext, "bin");
	media_ext("x.p-g", ext);
	ck_assert_str_eq(ext, "bin");
	media_ext("x.abcdefghijk", ext);
	ck_assert_str_eq(ext, "bin");
	media_ext("x.0123456789", ext);
	ck_assert_str_eq(ext, "0123456789");
	media_ext("x.\xc3\xa9", ext);
	ck_assert_str_eq(ext, "bin");
	media_ext(NULL, ext);
	ck_assert_str_eq(ext, "bin");
}
END_TEST

START_TEST(content_types)
{
	char t[MEDIA_TYPE_MAX + 1];

	media_content_type("image/png", "png", t);
	ck_assert_str_eq(t, "image/png");
	media_content_type("  Image/WebP ; q=1", "png", t);
	ck_assert_str_eq(t, "image/webp");
	media_content_type("application/octet-stream", "png", t);
	ck_assert_str_eq(t, "image/png");
	media_content_type("text/html", "png", t);
	ck_assert_str_eq(t, "image/png");
	media_content_type("image/svg+xml", "bin", t);
	ck_assert_str_eq(t, "application/octet-stream");
	media_content_type("image/png\r\nX-Evil: 1", "mp4", t);
	ck_assert_str_eq(t, "video/mp4");
	media_content_type("image/", "jpg", t);
	ck_assert_str_eq(t, "image/jpeg");
	media_content_type("/png", "wav", t);
	ck_assert_str_eq(t, "audio/wav");
	media_content_type("image/png/x", "flac", t);
	ck_assert_str_eq(t, "audio/flac");
	media_content_type("image/p g", "bin", t);
	ck_assert_str_eq(t, "application/octet-stream");
	media_content_type(NULL, "webm", t);
	ck_assert_str_eq(t, "video/webm");
	media_content_type("text/plain; charset=utf-8", "bin", t);
	ck_assert_str_eq(t, "text/plain");
	{
		char longtype[400];
		memset(longtype, 'a', sizeof longtype - 1);
		longtype[sizeof longtype - 1] = '\0';
		longtype[5] = '/';
		media_content_type(longtype, "png", t);
		ck_assert_str_eq(t, "image/png");
	}
}
END_TEST

static Suite *
comfy_suite(void)
{
	Suite *s = suite_create("daemon_comfy");
	TCase *submit = tcase_create("submit"), *hist = tcase_create("history");
	TCase *misc = tcase_create("misc"), *media = tcase_create("media");

	tcase_add_test(submit, submit_ok);
	tcase_add_test(submit, submit_validation);
	tcase_add_test(submit, submit_old_style_error);
	tcase_add_test(submit, submit_other_answers);
	tcase_add_test(submit, submit_message_bounded);
	tcase_add_test(submit, submit_body_shape);
	tcase_add_test(hist, history_pending);
	tcase_add_test(hist, history_success_outputs);
	tcase_add_test(hist, history_success_no_outputs);
	tcase_add_test(hist, history_hostile_file_names);
	tcase_add_test(hist, history_file_cap);
	tcase_add_test(hist, history_execution_error);
	tcase_add_test(hist, history_oom);
	tcase_add_test(hist, history_interrupted);
	tcase_add_test(hist, history_hostile);
	tcase_add_test(hist, history_huge_message);
	tcase_add_test(misc, queue_lookup);
	tcase_add_test(misc, stop_bodies);
	tcase_add_test(misc, view_url);
	tcase_add_test(media, extensions);
	tcase_add_test(media, content_types);
	suite_add_tcase(s, submit);
	suite_add_tcase(s, hist);
	suite_add_tcase(s, misc);
	suite_add_tcase(s, media);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(comfy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
