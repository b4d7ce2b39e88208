/* comfysim_py: Python's str() and repr() of JSON values (the validation
 * messages quote values the way the Python simulator's f-strings do), and
 * a growable string. */
#include "autoconf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comfysim_valid.h"

/* ---- Python's str() and repr() ---- */

void
py_float(double v, char *buf, size_t n)
{
	if (isnan(v)) {
		snprintf(buf, n, "nan");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, n, v < 0 ? "-inf" : "inf");
		return;
	}
	/* repr: the shortest digits that read back as v. */
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	{
		char digits[32], *e = strchr(buf, 'e'), *p;
		int exp = atoi(e + 1), nd = 0;
		bool neg = buf[0] == '-';
		for (p = buf + neg; p < e; p++)
			if (*p >= '0' && *p <= '9')
				digits[nd++] = *p;
		while (nd > 1 && digits[nd - 1] == '0')
			nd--;
		digits[nd] = '\0';
		if (exp < -4 || exp >= 16) {   /* scientific, as Python writes it */
			if (nd > 1)
				snprintf(buf, n, "%s%c.%se%c%02d", neg ? "-" : "", digits[0], digits + 1,
				    exp < 0 ? '-' : '+', abs(exp));
			else
				snprintf(buf, n, "%s%ce%c%02d", neg ? "-" : "", digits[0], exp < 0 ? '-' : '+',
				    abs(exp));
		} else if (exp < 0) {
			snprintf(buf, n, "%s0.%0*d%s", neg ? "-" : "", -exp - 1, 0, digits);
			if (-exp - 1 == 0)   /* %0*d printed a lone 0 for width 0 */
				snprintf(buf, n, "%s0.%s", neg ? "-" : "", digits);
		} else if (nd <= exp + 1) {
			snprintf(buf, n, "%s%s%0*d.0", neg ? "-" : "", digits, exp + 1 - nd, 0);
			if (exp + 1 - nd == 0)
				snprintf(buf, n, "%s%s.0", neg ? "-" : "", digits);
		} else {
			snprintf(buf, n, "%s%.*s.%s", neg ? "-" : "", exp + 1, digits, digits + exp + 1);
		}
	}
}

/* repr() of a string: single quotes unless it holds ' and no ". */
static void
py_repr_str(struct strbuf *b, const char *s)
{
	char q = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';

	sb_addc(b, q);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\\' || c == (unsigned char)q) {
			sb_addc(b, '\\');
			sb_addc(b, (char)c);
		} else if (c == '\n') {
			sb_add(b, "\\n");
		} else if (c == '\r') {
			sb_add(b, "\\r");
		} else if (c == '\t') {
			sb_add(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			sb_printf(b, "\\x%02x", c);
		} else {
			sb_addc(b, (char)c);
		}
	}
	sb_addc(b, q);
}

/* Python's str(v) (repr when `repr`, which only changes strings). */
void
py_value(struct strbuf *b, json_object *v, bool repr)
{
	char num[64];

	switch (json_object_get_type(v)) {
	case json_type_null:
		sb_add(b, "None");
		break;
	case json_type_boolean:
		sb_add(b, json_object_get_boolean(v) ? "True" : "False");
		break;
	case json_type_int:
		if (json_object_get_int64(v) == INT64_MAX)
			sb_printf(b, "%llu", (unsigned long long)json_object_get_uint64(v));
		else
			sb_printf(b, "%lld", (long long)json_object_get_int64(v));
		break;
	case json_type_double:
		py_float(json_object_get_double(v), num, sizeof num);
		sb_add(b, num);
		break;
	case json_type_string:
		if (repr)
			py_repr_str(b, json_object_get_string(v));
		else
			sb_add(b, json_object_get_string(v));
		break;
	case json_type_array: {
		size_t n = json_object_array_length(v);
		sb_addc(b, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				sb_add(b, ", ");
			py_value(b, json_object_array_get_idx(v, i), true);
		}
		sb_addc(b, ']');
		break;
	}
	case json_type_object: {
		bool first = true;
		sb_addc(b, '{');
		json_object_object_foreach(v, k, val) {
			json_object *ks = json_object_new_string(k);
			if (!first)
				sb_add(b, ", ");
			first = false;
			py_value(b, ks, true);
			json_object_put(ks);
			sb_add(b, ": ");
			py_value(b, val, true);
		}
		sb_addc(b, '}');
		break;
	}
	}
}

/* ---- a growable string ---- */

void
sb_add(struct strbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

void
sb_addc(struct strbuf *b, char c)
{
	sb_addn(b, &c, 1);
}

void
sb_addn(struct strbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->p, cap)) == NULL)
			return;   /* out of memory: the message is cut short */
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
sb_printf(struct strbuf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		sb_addn(b, small, (size_t)n);
		return;
	}
	{
		char *big = malloc((size_t)n + 1);
		if (big == NULL)
			return;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		sb_addn(b, big, (size_t)n);
		free(big);
	}
}
