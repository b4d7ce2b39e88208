#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ledger.h"

int
tbl_init(struct tbl *t, size_t ncols, const char *const *header)
{
	const char *names[TBL_MAX_COLS];

	memset(t, 0, sizeof *t);
	if (ncols == 0 || ncols > TBL_MAX_COLS)
		return -1;
	t->ncols = ncols;
	for (size_t i = 0; i < ncols; i++) {
		t->right[i] = header[i][0] == '>';
		names[i] = header[i] + t->right[i];
	}
	return tbl_add(t, names);
}

int
tbl_add(struct tbl *t, const char *const *cells)
{
	size_t base;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **p = realloc(t->cells, cap * t->ncols * sizeof *p);
		if (p == NULL)
			return -1;
		t->cells = p;
		t->cap = cap;
	}
	base = t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = cells[i] ? cells[i] : "-";
		size_t n;

		if ((t->cells[base + i] = strdup(s)) == NULL) {
			while (i-- > 0)
				free(t->cells[base + i]);
			return -1;
		}
		n = strlen(s);
		if (n > t->width[i])
			t->width[i] = n;
	}
	t->nrows++;
	return 0;
}

void
tbl_print(const struct tbl *t)
{
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];
			bool last = i + 1 == t->ncols;

			if (t->right[i])
				printf("%*s", (int)t->width[i], s);
			else if (last)
				fputs(s, stdout);
			else
				printf("%-*s", (int)t->width[i], s);
			fputs(last ? "\n" : "  ", stdout);
		}
	}
}

void
tbl_free(struct tbl *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof *t);
}

const char *
tbl_i64(char buf[32], int64_t v)
{
	snprintf(buf, 32, "%" PRId64, v);
	return buf;
}

const char *
tbl_credits(char buf[32], int64_t micro)
{
	ledger_format_credits(buf, micro);
	return buf;
}

const char *
tbl_time(char buf[32], const char *sqltime)
{
	if (sqltime == NULL)
		return NULL;
	snprintf(buf, 32, "%.19s", sqltime);
	return buf;
}
