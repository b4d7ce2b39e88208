/* comfysim_valid: node classes, prompt validation, Python-style value text. */
#ifndef COMFYSIM_VALID_H
#define COMFYSIM_VALID_H

#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* The node classes the simulator knows (the benchmark workflow's). */
enum node_kind {
	NODE_CKPT, NODE_CLIP, NODE_LATENT, NODE_KSAMPLER, NODE_VAEDECODE, NODE_SAVE, NODE_PREVIEW,
	NODE_NCLASSES
};

/* A growable NUL-terminated string; p is malloc'd (free it), NULL while empty. */
struct strbuf {
	char *p;
	size_t len, cap;
};
void sb_add(struct strbuf *b, const char *s);
void sb_addc(struct strbuf *b, char c);
void sb_addn(struct strbuf *b, const char *s, size_t n);
void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses the input tables once; ckpt_list is the checkpoint names (a
 * reference is kept). 0 or -1. */
int valid_init(json_object *ckpt_list);
void valid_cleanup(void);

/* The class's index, or -1 for a class the simulator does not know. */
int node_class(const char *name);
bool node_is_output(int k);
const char *node_class_name(int k);

/* {type, message, details, extra_info}; takes extra (NULL: {}). */
json_object *verr(const char *type, const char *message, const char *details, json_object *extra);

/* Python's str(v), or repr(v) for strings when repr. */
void py_value(struct strbuf *b, json_object *v, bool repr);
/* Python's repr of a float. */
void py_float(double v, char *buf, size_t n);

/* validate_prompt: 0 when some output is valid (*good_outputs: new array
 * of their ids), else -1 with *error (new). *node_errors is always set
 * (new object). Converts input values in place. partial: the
 * partial_execution_targets array, or NULL. */
int valid_prompt(json_object *prompt, json_object *partial, json_object **error,
    json_object **good_outputs, json_object **node_errors);

#endif
