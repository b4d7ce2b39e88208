/* media: names and content types for stored outputs. The file name and the
 * Content-Type come from a backend, so both are reduced to a safe shape
 * before they reach a path on disk or a reply header. Pure functions. */
#ifndef GENQD_MEDIA_H
#define GENQD_MEDIA_H

#include <stddef.h>

#define MEDIA_EXT_MAX 10          /* longest extension kept */
#define MEDIA_TYPE_MAX 127        /* longest content type kept */

/* The extension of filename (after the last '.'), lowercased, letters and
 * digits only, at most MEDIA_EXT_MAX characters; "bin" when there is none
 * or it is not of that shape. */
void media_ext(const char *filename, char out[MEDIA_EXT_MAX + 1]);

/* The content type to record: header (a reply's Content-Type, may be NULL)
 * when it is a sane "type/subtype" token pair (parameters dropped, letters
 * lowercased) of an inert kind (image, video, audio, model, text/plain,
 * JSON; never HTML, XML, SVG or script), else the type belonging to ext,
 * else application/octet-stream. */
void media_content_type(const char *header, const char *ext,
    char out[MEDIA_TYPE_MAX + 1]);

#endif
