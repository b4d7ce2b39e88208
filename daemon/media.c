#include "autoconf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "media.h"

static const struct {
	const char *ext;
	const char *type;
} known_types[] = {
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "webp", "image/webp" },
	{ "gif", "image/gif" },
	{ "bmp", "image/bmp" },
	{ "tif", "image/tiff" },
	{ "tiff", "image/tiff" },
	{ "avif", "image/avif" },
	{ "mp4", "video/mp4" },
	{ "webm", "video/webm" },
	{ "mov", "video/quicktime" },
	{ "mkv", "video/x-matroska" },
	{ "wav", "audio/wav" },
	{ "mp3", "audio/mpeg" },
	{ "flac", "audio/flac" },
	{ "ogg", "audio/ogg" },
	{ "opus", "audio/opus" },
	{ "m4a", "audio/mp4" },
	{ "txt", "text/plain" },
	{ "json", "application/json" },
	{ "glb", "model/gltf-binary" },
	{ "gltf", "model/gltf+json" },
	{ "obj", "model/obj" },
	{ "safetensors", "application/octet-stream" },
};

static bool
is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

void
media_ext(const char *filename, char out[MEDIA_EXT_MAX + 1])
{
	const char *dot = filename ? strrchr(filename, '.') : NULL;
	size_t n = 0;

	if (dot == NULL || dot == filename || dot[1] == '\0')
		goto fallback;
	for (const char *p = dot + 1; *p; p++) {
		char c = lower(*p);
		if (!is_lower_alnum(c) || n == MEDIA_EXT_MAX)
			goto fallback;
		out[n++] = c;
	}
	out[n] = '\0';
	return;
fallback:
	snprintf(out, MEDIA_EXT_MAX + 1, "bin");
}

/* RFC 9110 token characters. */
static bool
is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Copy "type/subtype" from header into out, lowercased; false unless it is
 * exactly two non-empty tokens, optionally followed by parameters. */
static bool
sane_type(const char *header, char out[MEDIA_TYPE_MAX + 1])
{
	size_t n = 0, slash = 0;
	const char *p = header;

	while (*p == ' ' || *p == '\t')
		p++;
	for (; *p && *p != ';' && *p != ' ' && *p != '\t'; p++) {
		if (n == MEDIA_TYPE_MAX)
			return false;
		if (*p == '/') {
			if (slash || n == 0)
				return false;
			slash = n;
		} else if (!is_tchar(*p)) {
			return false;
		}
		out[n++] = lower(*p);
	}
	out[n] = '\0';
	/* After the subtype only whitespace or parameters may follow. */
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0' && *p != ';')
		return false;
	return slash > 0 && slash + 1 < n;
}

/* Outputs are served from the API's own origin: only types a browser will
 * not run as a document (no HTML, XML, SVG or script) are taken on trust. */
static bool
inert_type(const char *t)
{
	static const char *const majors[] = { "image/", "video/", "audio/", "model/" };

	if (strcmp(t, "text/plain") == 0 || strcmp(t, "application/json") == 0)
		return true;
	if (strstr(t, "xml") != NULL || strstr(t, "svg") != NULL ||
	    strstr(t, "html") != NULL || strstr(t, "script") != NULL)
		return false;
	for (size_t i = 0; i < sizeof majors / sizeof majors[0]; i++)
		if (strncmp(t, majors[i], strlen(majors[i])) == 0)
			return true;
	return false;
}

void
media_content_type(const char *header, const char *ext, char out[MEDIA_TYPE_MAX + 1])
{
	if (header != NULL && sane_type(header, out) && inert_type(out))
		return;
	for (size_t i = 0; ext != NULL && i < sizeof known_types / sizeof known_types[0]; i++) {
		if (strcmp(ext, known_types[i].ext) == 0) {
			snprintf(out, MEDIA_TYPE_MAX + 1, "%s", known_types[i].type);
			return;
		}
	}
	snprintf(out, MEDIA_TYPE_MAX + 1, "application/octet-stream");
}
