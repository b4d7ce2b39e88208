/* comfysim_png: the PNG files SaveImage writes. Valid RGB PNGs (a zlib
 * stream and crc32s) whose pixels follow from a per-prompt key, so two
 * prompts give two different files: a gradient plus the key repeated in
 * the blue channel. The zlib stream uses level 0 (stored blocks): even
 * level 1 on a 12 KiB image was a third of a prompt's CPU, and a simulated
 * GPU's cost must stay off genq's machine. One deflate stream is kept and
 * reset between images: a fresh one per image cost more than the rest of a
 * prompt (deflateInit allocates ~256 KiB, and its munmap stalls every
 * thread). Only the worker thread makes PNGs. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "comfysim.h"

static z_stream zs;
static bool zs_ready;

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Appends one chunk at out + *off (the caller sized out). */
static void
chunk(unsigned char *out, size_t *off, const char *type, const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen)
{
	unsigned char *p = out + *off;
	uLong crc;

	put32(p, (uint32_t)(alen + blen));
	memcpy(p + 4, type, 4);
	if (alen)
		memcpy(p + 8, a, alen);
	if (blen)
		memcpy(p + 8 + alen, b, blen);
	crc = crc32(0L, p + 4, (uInt)(4 + alen + blen));
	put32(p + 8 + alen + blen, (uint32_t)crc);
	*off += 12 + alen + blen;
}

unsigned char *
png_make(unsigned w, unsigned h, const unsigned char key[32], const char *const *keys,
    const char *const *vals, size_t ntext, size_t *len)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	size_t stride = 3 * (size_t)w + 1, rawlen = stride * h, total, off = 0, i;
	unsigned char *raw = NULL, *out = NULL, ihdr[13];
	uLongf zlen;

	raw = malloc(rawlen);
	if (raw == NULL)
		goto out;
	for (unsigned y = 0; y < h; y++) {
		unsigned char *row = raw + y * stride, g = (unsigned char)(key[1] + y * 256 / h);
		row[0] = 0;   /* filter type none */
		for (unsigned x = 0; x < w; x++) {
			row[1 + 3 * x] = (unsigned char)(key[0] + x * 256 / w);
			row[2 + 3 * x] = g;
			row[3 + 3 * x] = key[(x + y) % 32];
		}
	}
	zlen = compressBound(rawlen);
	total = 8 + 25 + 12 + zlen + 12;
	for (i = 0; i < ntext; i++)
		total += 12 + strlen(keys[i]) + 1 + strlen(vals[i]);
	out = malloc(total);
	if (out == NULL)
		goto out;
	memcpy(out, sig, 8);
	off = 8;
	put32(ihdr, w);
	put32(ihdr + 4, h);
	ihdr[8] = 8;    /* bit depth */
	ihdr[9] = 2;    /* RGB */
	ihdr[10] = ihdr[11] = ihdr[12] = 0;
	chunk(out, &off, "IHDR", ihdr, 13, NULL, 0);
	for (i = 0; i < ntext; i++)   /* ComfyUI embeds the prompt as tEXt */
		chunk(out, &off, "tEXt", (const unsigned char *)keys[i], strlen(keys[i]) + 1,
		    (const unsigned char *)vals[i], strlen(vals[i]));
	/* IDAT: the zlib stream straight into place after the 8-byte chunk head
	 * (memLevel 4: a small hash, cheap to reset). */
	if (!zs_ready) {
		if (deflateInit2(&zs, 0, Z_DEFLATED, 15, 4, Z_DEFAULT_STRATEGY) != Z_OK)
			goto fail;
		zs_ready = true;
	} else if (deflateReset(&zs) != Z_OK) {
		goto fail;
	}
	zs.next_in = raw;
	zs.avail_in = (uInt)rawlen;
	zs.next_out = out + off + 8;
	zs.avail_out = (uInt)zlen;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		goto fail;
	zlen = zs.total_out;
	put32(out + off, (uint32_t)zlen);
	memcpy(out + off + 4, "IDAT", 4);
	put32(out + off + 8 + zlen, (uint32_t)crc32(0L, out + off + 4, (uInt)(4 + zlen)));
	off += 12 + zlen;
	chunk(out, &off, "IEND", NULL, 0, NULL, 0);
	*len = off;
out:
	free(raw);
	return out;
fail:
	free(out);
	out = NULL;
	goto out;
}

void
png_cleanup(void)
{
	if (zs_ready)
		deflateEnd(&zs);
	zs_ready = false;
}
