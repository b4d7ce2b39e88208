/* comfysim_save: SaveImage and PreviewImage files, as ComfyUI's
 * folder_paths.get_save_image_path names them: `%width%`/`%height%` in the
 * prefix, a subfolder confined to the folder, `<name>_00001_.png` with the
 * next counter. The counter is read from the folder once per prefix, then
 * counted here: rescanning a folder that grows by a file per prompt made a
 * prompt's cost grow with it. Worker thread only. */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "comfysim.h"
#include "comfysim_valid.h"

#define TO_STR(o) json_object_to_json_string_ext((o), JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Lexical normpath of an absolute or relative path into out. */
static void
normpath(const char *in, char *out, size_t n)
{
	char tmp[4096], *parts[512], *save = NULL, *tok;
	size_t np = 0;
	bool abs = in[0] == '/';

	snprintf(tmp, sizeof tmp, "%s", in);
	for (tok = strtok_r(tmp, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0 && np > 0 && strcmp(parts[np - 1], "..") != 0) {
			np--;
			continue;
		}
		if (strcmp(tok, "..") == 0 && abs)
			continue;
		if (np < 512)
			parts[np++] = tok;
	}
	out[0] = '\0';
	if (abs)
		snprintf(out, n, "/");
	for (size_t i = 0; i < np; i++) {
		size_t l = strlen(out);
		snprintf(out + l, n - l, "%s%s", i ? "/" : "", parts[i]);
	}
	if (!abs && np == 0)
		snprintf(out, n, ".");
}

/* Highest counter of `name`'s files in folder, scanned once per folder and
 * prefix, then counted here (a prompt's cost must not grow with the folder). */
static long
next_counter(struct sim *s, const char *folder, const char *name)
{
	struct strbuf key = {0};
	json_object *v;
	long highest = 0;
	size_t lead = strlen(name);

	sb_printf(&key, "%s\n%s", folder, name);
	if (json_object_object_get_ex(s->prefix_counters, key.p, &v)) {
		highest = (long)json_object_get_int64(v);
	} else {
		DIR *d = opendir(folder);
		struct dirent *e;
		if (d == NULL) {
			char path[8704];
			snprintf(path, sizeof path, "%s", folder);
			for (char *p = path + 1; *p; p++)
				if (*p == '/') {
					*p = '\0';
					mkdir(path, 0755);
					*p = '/';
				}
			mkdir(path, 0755);
		} else {
			while ((e = readdir(d)) != NULL) {
				char *end;
				long c;
				if (strncmp(e->d_name, name, lead) != 0 || e->d_name[lead] != '_')
					continue;
				c = strtol(e->d_name + lead + 1, &end, 10);
				if (end != e->d_name + lead + 1 && *end == '_' && c > highest)
					highest = c;
			}
			closedir(d);
		}
	}
	json_object_object_add(s->prefix_counters, key.p, json_object_new_int64(highest + 1));
	free(key.p);
	return highest + 1;
}

static char *
replace_all(const char *s, const char *what, const char *with)
{
	struct strbuf b = {0};
	size_t wl = strlen(what);
	const char *p;

	while ((p = strstr(s, what)) != NULL) {
		sb_addn(&b, s, (size_t)(p - s));
		sb_add(&b, with);
		s = p + wl;
	}
	sb_add(&b, s);
	return b.p ? b.p : strdup("");
}

int
save_images(struct sim *s, const char *prefix_in, bool temp, const struct save_image *img,
    json_object *prompt, json_object *extra_data, json_object **ui, struct save_error *err)
{
	const char *base = temp ? s->temp_dir : s->output_dir;
	char prefix[1024], wbuf[32], hbuf[32], norm[4096], folder[8704], absfolder[8704];
	char *p1 = NULL, *p2 = NULL, *sub, *name;
	const char *keys[64], *vals[64];
	json_object *images = json_object_new_array(), *extra_png;
	size_t ntext = 0;
	long counter;
	int rc = -1;

	if (temp) {   /* PreviewImage: a random suffix and the temp folder, like ComfyUI */
		static const char letters[] = "abcdefghijklmnopqrstupvxyz";
		unsigned char rnd[5];
		RAND_bytes(rnd, 5);
		snprintf(prefix, sizeof prefix, "ComfyUI_temp_%c%c%c%c%c", letters[rnd[0] % 26],
		    letters[rnd[1] % 26], letters[rnd[2] % 26], letters[rnd[3] % 26], letters[rnd[4] % 26]);
	} else {
		snprintf(prefix, sizeof prefix, "%s", prefix_in);
	}
	snprintf(wbuf, sizeof wbuf, "%lld", (long long)img->w);
	snprintf(hbuf, sizeof hbuf, "%lld", (long long)img->h);
	p1 = replace_all(prefix, "%width%", wbuf);
	p2 = replace_all(p1, "%height%", hbuf);
	normpath(p2, norm, sizeof norm);
	name = strrchr(norm, '/');
	if (name) {
		*name++ = '\0';
		sub = norm;
	} else {
		name = norm;
		sub = "";
	}
	snprintf(folder, sizeof folder, "%s/%s", base, sub);
	normpath(folder, absfolder, sizeof absfolder);
	if (strncmp(absfolder, base, strlen(base)) != 0 ||
	    (absfolder[strlen(base)] != '\0' && absfolder[strlen(base)] != '/')) {
		snprintf(err->type, sizeof err->type, "Exception");
		sb_printf(&err->msg, "Saving image outside the output folder is not allowed.\n"
		    " full_output_folder: %s\n         output_dir: %s", absfolder, base);
		goto out;
	}
	counter = next_counter(s, absfolder, name);
	keys[ntext] = "prompt";
	vals[ntext++] = TO_STR(prompt);
	if (json_object_object_get_ex(extra_data, "extra_pnginfo", &extra_png) &&
	    json_object_is_type(extra_png, json_type_object)) {
		json_object_object_foreach(extra_png, k, v) {
			if (ntext < 64) {
				keys[ntext] = k;
				vals[ntext++] = v ? TO_STR(v) : "null";
			}
		}
	}
	for (int64_t b = 0; b < img->batch; b++, counter++) {
		char bnum[32], file[2048], path[10816], *fname;
		unsigned char key[32], *png;
		size_t len;
		unsigned w = (unsigned)(img->w / 8 < 8 ? 8 : img->w / 8 > 512 ? 512 : img->w / 8);
		unsigned h = (unsigned)(img->h / 8 < 8 ? 8 : img->h / 8 > 512 ? 512 : img->h / 8);
		json_object *entry;
		struct strbuf kb = {0};
		ssize_t wrote;
		int fd;

		snprintf(bnum, sizeof bnum, "%lld", (long long)b);
		fname = replace_all(name, "%batch_num%", bnum);
		snprintf(file, sizeof file, "%s_%05ld_.png", fname, counter);
		free(fname);
		sb_addn(&kb, (const char *)img->key, 32);
		sb_printf(&kb, "|%lld", (long long)b);
		EVP_Digest(kb.p, kb.len, key, NULL, EVP_sha256(), NULL);
		free(kb.p);
		png = png_make(w, h, key, keys, vals, ntext, &len);
		snprintf(path, sizeof path, "%s/%s", absfolder, file);
		/* Written in place, not to a temporary name then renamed as the
		 * Python simulator does: nobody learns the name before /history
		 * shows it, after the write, and file system calls are most of a
		 * prompt's cost here. */
		fd = png ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
		wrote = fd >= 0 ? write(fd, png, len) : -1;
		free(png);
		if (fd < 0 || wrote != (ssize_t)len || close(fd) != 0) {
			if (fd >= 0 && wrote != (ssize_t)len)
				close(fd);
			snprintf(err->type, sizeof err->type, "OSError");
			sb_printf(&err->msg, "cannot write %s: %s", path, strerror(errno));
			goto out;
		}
		entry = json_object_new_object();
		json_object_object_add(entry, "filename", json_object_new_string(file));
		json_object_object_add(entry, "subfolder", json_object_new_string(sub));
		json_object_object_add(entry, "type", json_object_new_string(temp ? "temp" : "output"));
		json_object_array_add(images, entry);
	}
	*ui = json_object_new_object();
	json_object_object_add(*ui, "images", images);
	images = NULL;
	rc = 0;
out:
	json_object_put(images);
	free(p1);
	free(p2);
	return rc;
}

