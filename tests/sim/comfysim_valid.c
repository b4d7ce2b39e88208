/* comfysim_valid: the node classes and ComfyUI's prompt validation
 * (execution.validate_prompt / validate_inputs), ported from
 * comfyui_sim.py with its quirks: errors are {type, message, details,
 * extra_info}; `error.details` lists only the failed output's own reasons;
 * node_errors lists every invalid node validated so far under each failed
 * output; a link to an unknown node is exception_during_validation;
 * converted input values replace the submitted ones. Messages use Python's
 * str()/repr() of values, as the Python simulator's do. */
#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comfysim.h"
#include "comfysim_valid.h"

#define MAX_DEPTH 900    /* Python's recursion limit ends deeper chains with an exception */

#define SAMPLERS "[\"euler\",\"euler_cfg_pp\",\"euler_ancestral\",\"euler_ancestral_cfg_pp\",\"heun\"," \
	"\"heunpp2\",\"dpm_2\",\"dpm_2_ancestral\",\"lms\",\"dpm_fast\",\"dpm_adaptive\",\"dpmpp_2s_ancestral\"," \
	"\"dpmpp_2s_ancestral_cfg_pp\",\"dpmpp_sde\",\"dpmpp_sde_gpu\",\"dpmpp_2m\",\"dpmpp_2m_cfg_pp\"," \
	"\"dpmpp_2m_sde\",\"dpmpp_2m_sde_gpu\",\"dpmpp_3m_sde\",\"dpmpp_3m_sde_gpu\",\"ddpm\",\"lcm\",\"ipndm\"," \
	"\"ipndm_v\",\"deis\",\"res_multistep\",\"gradient_estimation\",\"er_sde\",\"ddim\",\"uni_pc\",\"uni_pc_bh2\"]"
#define SCHEDULERS "[\"simple\",\"sgm_uniform\",\"karras\",\"exponential\",\"ddim_uniform\",\"beta\"," \
	"\"normal\",\"linear_quadratic\",\"kl_optimal\"]"
#define INTCFG(d, lo, hi, more) "[\"INT\",{\"default\":" #d ",\"min\":" #lo ",\"max\":" #hi more "}]"

/* The required inputs of each class, as [kind, options] (CKPT: the
 * checkpoint list from --checkpoints). */
struct node_input {
	const char *name;
	const char *config;
};

static const struct node_class_def {
	const char *name;
	bool output;
	int nreturns;
	const char *returns[3];
	struct node_input inputs[10];
} defs[NODE_NCLASSES] = {
	[NODE_CKPT] = {"CheckpointLoaderSimple", false, 3, {"MODEL", "CLIP", "VAE"},
	    {{"ckpt_name", "CKPT"}}},
	[NODE_CLIP] = {"CLIPTextEncode", false, 1, {"CONDITIONING"},
	    {{"text", "[\"STRING\",{\"multiline\":true,\"dynamicPrompts\":true}]"}, {"clip", "[\"CLIP\",{}]"}}},
	[NODE_LATENT] = {"EmptyLatentImage", false, 1, {"LATENT"},
	    {{"width", INTCFG(512, 16, 16384, ",\"step\":8")}, {"height", INTCFG(512, 16, 16384, ",\"step\":8")},
	     {"batch_size", INTCFG(1, 1, 4096, "")}}},
	[NODE_KSAMPLER] = {"KSampler", false, 1, {"LATENT"},
	    {{"model", "[\"MODEL\",{}]"},
	     {"seed", INTCFG(0, 0, 18446744073709551615, ",\"control_after_generate\":true")},
	     {"steps", INTCFG(20, 1, 10000, "")},
	     {"cfg", "[\"FLOAT\",{\"default\":8.0,\"min\":0.0,\"max\":100.0,\"step\":0.1,\"round\":0.01}]"},
	     {"sampler_name", "[" SAMPLERS ",{}]"}, {"scheduler", "[" SCHEDULERS ",{}]"},
	     {"positive", "[\"CONDITIONING\",{}]"}, {"negative", "[\"CONDITIONING\",{}]"},
	     {"latent_image", "[\"LATENT\",{}]"},
	     {"denoise", "[\"FLOAT\",{\"default\":1.0,\"min\":0.0,\"max\":1.0,\"step\":0.01}]"}}},
	[NODE_VAEDECODE] = {"VAEDecode", false, 1, {"IMAGE"},
	    {{"samples", "[\"LATENT\",{}]"}, {"vae", "[\"VAE\",{}]"}}},
	[NODE_SAVE] = {"SaveImage", true, 1, {"IMAGE"},
	    {{"images", "[\"IMAGE\",{}]"}, {"filename_prefix", "[\"STRING\",{\"default\":\"ComfyUI\"}]"}}},
	[NODE_PREVIEW] = {"PreviewImage", true, 0, {NULL}, {{"images", "[\"IMAGE\",{}]"}}},
};

/* Parsed configs: [class][input], built once by valid_init. */
static json_object *configs[NODE_NCLASSES][10];

int
valid_init(json_object *ckpt_list)
{
	for (int k = 0; k < NODE_NCLASSES; k++)
		for (int i = 0; i < 10 && defs[k].inputs[i].name; i++) {
			const char *c = defs[k].inputs[i].config;
			if (strcmp(c, "CKPT") == 0) {
				configs[k][i] = json_object_new_array();
				json_object_array_add(configs[k][i], json_object_get(ckpt_list));
				json_object *o = json_object_new_object();
				json_object_object_add(o, "tooltip",
				    json_object_new_string("The name of the checkpoint (model) to load."));
				json_object_array_add(configs[k][i], o);
			} else if ((configs[k][i] = json_tokener_parse(c)) == NULL) {
				return -1;
			}
		}
	return 0;
}

void
valid_cleanup(void)
{
	for (int k = 0; k < NODE_NCLASSES; k++)
		for (int i = 0; i < 10; i++) {
			json_object_put(configs[k][i]);
			configs[k][i] = NULL;
		}
}

int
node_class(const char *name)
{
	for (int k = 0; k < NODE_NCLASSES; k++)
		if (strcmp(defs[k].name, name) == 0)
			return k;
	return -1;
}

bool
node_is_output(int k)
{
	return defs[k].output;
}

const char *
node_class_name(int k)
{
	return defs[k].name;
}

/* ---- errors ---- */

json_object *
verr(const char *type, const char *message, const char *details, json_object *extra)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, "type", json_object_new_string(type));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(e, "details", json_object_new_string(details));
	json_object_object_add(e, "extra_info", extra ? extra : json_object_new_object());
	return e;
}

static json_object *
extra_input(const char *name, json_object *config, bool has_received, json_object *received)
{
	json_object *x = json_object_new_object();

	json_object_object_add(x, "input_name", json_object_new_string(name));
	if (config)
		json_object_object_add(x, "input_config", json_object_get(config));
	if (has_received)   /* a JSON null is a received value too */
		json_object_object_add(x, "received_value", json_object_get(received));
	return x;
}

/* The result of validating one node. */
struct vstate {
	char *nid;
	bool valid;
	json_object *errors;    /* array */
};

struct vctx {
	json_object *prompt;
	struct vstate *st;      /* in insertion order, like the Python dict */
	size_t nst, capst;
	json_object *index;     /* nid -> position in st */
	const char **visiting;
	size_t nvisit;
	/* an exception raised while validating (Python would unwind) */
	const char *exc_type;
	char exc_msg[256];
};

static struct vstate *
vget(struct vctx *v, const char *nid)
{
	json_object *i;

	if (!json_object_object_get_ex(v->index, nid, &i))
		return NULL;
	return &v->st[json_object_get_int(i)];
}

/* validated[nid] = (valid, errors): replaces in place or appends. Takes errors. */
static struct vstate *
vset(struct vctx *v, const char *nid, bool valid, json_object *errors)
{
	struct vstate *st = vget(v, nid);

	if (st == NULL) {
		if (v->nst == v->capst) {
			size_t cap = v->capst ? v->capst * 2 : 16;
			struct vstate *p = realloc(v->st, cap * sizeof *p);
			if (p == NULL) {
				json_object_put(errors);
				return NULL;
			}
			v->st = p;
			v->capst = cap;
		}
		st = &v->st[v->nst];
		st->nid = strdup(nid);
		st->errors = NULL;
		json_object_object_add(v->index, nid, json_object_new_int((int)v->nst));
		v->nst++;
	}
	json_object_put(st->errors);
	st->valid = valid;
	st->errors = errors;
	return st;
}

static const char *
class_of(json_object *prompt, const char *nid)
{
	json_object *node, *ct;

	if (!json_object_object_get_ex(prompt, nid, &node) ||
	    !json_object_object_get_ex(node, "class_type", &ct))
		return "";
	return json_object_get_string(ct);
}

static const char *
py_type_name(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "NoneType";
	case json_type_boolean: return "bool";
	case json_type_int: return "int";
	case json_type_double: return "float";
	case json_type_string: return "str";
	case json_type_array: return "list";
	default: return "dict";
	}
}

/* int(v), float(v) or str(v) as Python converts; NULL and msg on failure. */
static json_object *
convert(const char *kind, json_object *v, char *msg, size_t n)
{
	enum json_type t = json_object_get_type(v);
	struct strbuf b = {0};

	if (strcmp(kind, "INT") == 0) {
		if (t == json_type_int)
			return json_object_get(v);
		if (t == json_type_boolean)
			return json_object_new_int(json_object_get_boolean(v));
		if (t == json_type_double) {
			double d = json_object_get_double(v);
			if (isnan(d)) {
				snprintf(msg, n, "cannot convert float NaN to integer");
				return NULL;
			}
			if (isinf(d) || fabs(d) >= 9.2e18) {
				snprintf(msg, n, "cannot convert float infinity to integer");
				return NULL;
			}
			return json_object_new_int64((int64_t)d);
		}
		if (t == json_type_string) {
			const char *s = json_object_get_string(v);
			char *end;
			long long x;
			errno = 0;
			x = strtoll(s, &end, 10);
			while (*end == ' ' || *end == '\t' || *end == '\n')
				end++;
			if (*s && end != s && *end == '\0' && errno == 0 && !strchr(s, '.'))
				return json_object_new_int64(x);
			py_value(&b, v, true);
			snprintf(msg, n, "invalid literal for int() with base 10: %s", b.p ? b.p : "''");
			free(b.p);
			return NULL;
		}
		snprintf(msg, n, "int() argument must be a string, a bytes-like object or a real number, not '%s'",
		    py_type_name(v));
		return NULL;
	}
	if (strcmp(kind, "FLOAT") == 0) {
		if (t == json_type_double)
			return json_object_get(v);
		if (t == json_type_int || t == json_type_boolean)
			return json_object_new_double(json_object_get_double(v));
		if (t == json_type_string) {
			const char *s = json_object_get_string(v);
			char *end;
			double d = strtod(s, &end);
			while (*end == ' ' || *end == '\t' || *end == '\n')
				end++;
			if (*s && end != s && *end == '\0')
				return json_object_new_double(d);
			py_value(&b, v, true);
			snprintf(msg, n, "could not convert string to float: %s", b.p ? b.p : "''");
			free(b.p);
			return NULL;
		}
		snprintf(msg, n, "float() argument must be a string or a real number, not '%s'", py_type_name(v));
		return NULL;
	}
	if (strcmp(kind, "STRING") == 0) {
		json_object *r;
		if (t == json_type_string)
			return json_object_get(v);
		py_value(&b, v, false);
		r = json_object_new_string(b.p ? b.p : "");
		free(b.p);
		return r;
	}
	return json_object_get(v);
}

/* Python's ==, for value_not_in_list. */
static bool
py_equal(json_object *a, json_object *b)
{
	enum json_type ta = json_object_get_type(a), tb = json_object_get_type(b);
	bool na = ta == json_type_int || ta == json_type_double || ta == json_type_boolean;
	bool nb = tb == json_type_int || tb == json_type_double || tb == json_type_boolean;

	if (na && nb)
		return json_object_get_double(a) == json_object_get_double(b);
	if (ta == json_type_string && tb == json_type_string)
		return strcmp(json_object_get_string(a), json_object_get_string(b)) == 0;
	return false;
}

static long double
num(json_object *v)
{
	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) == INT64_MAX)
		return (long double)json_object_get_uint64(v);
	if (json_object_is_type(v, json_type_int))
		return (long double)json_object_get_int64(v);
	return json_object_get_double(v);
}

/* Range and list checks of one converted value; appends to errors. */
static void
range_errors(json_object *errors, const char *name, json_object *kind, json_object *opts,
    json_object *val, json_object *info)
{
	json_object *lim;
	struct strbuf b = {0}, m = {0};

	if (json_object_object_get_ex(opts, "min", &lim) && num(val) < num(lim)) {
		sb_add(&m, "Value ");
		py_value(&m, val, false);
		sb_add(&m, " smaller than min of ");
		py_value(&m, lim, false);
		json_object_array_add(errors, verr("value_smaller_than_min", m.p, name,
		    extra_input(name, info, true, val)));
		goto out;
	}
	if (json_object_object_get_ex(opts, "max", &lim) && num(val) > num(lim)) {
		sb_add(&m, "Value ");
		py_value(&m, val, false);
		sb_add(&m, " bigger than max of ");
		py_value(&m, lim, false);
		json_object_array_add(errors, verr("value_bigger_than_max", m.p, name,
		    extra_input(name, info, true, val)));
		goto out;
	}
	if (json_object_is_type(kind, json_type_array)) {
		size_t n = json_object_array_length(kind);
		bool big = n > 20;   /* ComfyUI does not echo long lists back */
		json_object *x;
		for (size_t i = 0; i < n; i++)
			if (py_equal(val, json_object_array_get_idx(kind, i)))
				goto out;
		sb_printf(&b, "%s: ", name);
		py_value(&b, val, true);
		sb_add(&b, " not in ");
		if (big)
			sb_printf(&b, "(list of length %zu)", n);
		else
			py_value(&b, kind, true);
		x = extra_input(name, NULL, false, NULL);
		json_object_object_add(x, "input_config", big ? NULL : json_object_get(info));
		json_object_object_add(x, "received_value", json_object_get(val));
		json_object_array_add(errors, verr("value_not_in_list", "Value not in list", b.p, x));
	}
out:
	free(b.p);
	free(m.p);
}

static bool contains_err(json_object *list, json_object *e);

/* One node, recursively through its links (validate_inputs). Returns the
 * node's state, or NULL when an exception was raised (v->exc_type set). */
static struct vstate *
validate_node(struct vctx *v, const char *nid)
{
	struct vstate *st = vget(v, nid), *prev;
	json_object *node, *inputs, *errors;
	bool valid = true;
	int k;

	if (st)
		return st;
	for (size_t i = 0; i < v->nvisit; i++) {
		if (strcmp(v->visiting[i], nid) != 0)
			continue;
		/* A dependency cycle: every node on it gets the error. */
		struct strbuf d = {0};
		json_object *cycle = json_object_new_array();
		for (size_t j = i; j <= v->nvisit; j++) {
			const char *n = j < v->nvisit ? v->visiting[j] : nid;
			bool seen = false;
			sb_printf(&d, "%s%s (%s)", j > i ? " -> " : "", n, class_of(v->prompt, n));
			for (size_t c = 0; c < json_object_array_length(cycle); c++)
				seen |= strcmp(json_object_get_string(json_object_array_get_idx(cycle, c)), n) == 0;
			if (!seen)
				json_object_array_add(cycle, json_object_new_string(n));
		}
		for (size_t c = 0; c < json_object_array_length(cycle); c++) {
			const char *n = json_object_get_string(json_object_array_get_idx(cycle, c));
			json_object *x = json_object_new_object(), *errs = json_object_new_array();
			json_object_object_add(x, "node_id", json_object_new_string(n));
			json_object_object_add(x, "cycle_nodes", json_object_get(cycle));
			json_object_array_add(errs, verr("dependency_cycle", "Dependency cycle detected", d.p, x));
			vset(v, n, false, errs);
		}
		json_object_put(cycle);
		free(d.p);
		return vget(v, nid);
	}
	if (v->nvisit >= MAX_DEPTH) {
		v->exc_type = "RecursionError";
		snprintf(v->exc_msg, sizeof v->exc_msg, "maximum recursion depth exceeded");
		return NULL;
	}
	json_object_object_get_ex(v->prompt, nid, &node);
	k = node_class(class_of(v->prompt, nid));
	if (!json_object_object_get_ex(node, "inputs", &inputs)) {
		v->exc_type = "KeyError";
		snprintf(v->exc_msg, sizeof v->exc_msg, "'inputs'");
		return NULL;
	}
	errors = json_object_new_array();
	for (int i = 0; i < 10 && defs[k].inputs[i].name; i++) {
		const char *name = defs[k].inputs[i].name;
		json_object *info = configs[k][i], *kind = json_object_array_get_idx(info, 0);
		json_object *opts = json_object_array_get_idx(info, 1), *val, *conv;
		bool kind_is_str = json_object_is_type(kind, json_type_string);
		char msg[256];

		if (!json_object_is_type(inputs, json_type_object)) {
			/* `name not in inputs` on what is not a dict, as Python evaluates it */
			bool in = false;
			if (json_object_is_type(inputs, json_type_array)) {
				for (size_t j = 0; j < json_object_array_length(inputs); j++) {
					json_object *e = json_object_array_get_idx(inputs, j);
					in |= json_object_is_type(e, json_type_string) &&
					    strcmp(json_object_get_string(e), name) == 0;
				}
			} else if (json_object_is_type(inputs, json_type_string)) {
				in = strstr(json_object_get_string(inputs), name) != NULL;
			} else {
				v->exc_type = "TypeError";
				snprintf(v->exc_msg, sizeof v->exc_msg, "argument of type '%s' is not iterable",
				    py_type_name(inputs));
				goto exc;
			}
			if (in) {   /* then inputs[name] */
				v->exc_type = "TypeError";
				snprintf(v->exc_msg, sizeof v->exc_msg, "%s",
				    json_object_is_type(inputs, json_type_array) ?
				    "list indices must be integers or slices, not str" :
				    "string indices must be integers, not 'str'");
				goto exc;
			}
			val = NULL;
		}
		if (!json_object_is_type(inputs, json_type_object) ||
		    !json_object_object_get_ex(inputs, name, &val)) {
			json_object *x = json_object_new_object();
			json_object_object_add(x, "input_name", json_object_new_string(name));
			json_object_array_add(errors, verr("required_input_missing", "Required input is missing",
			    name, x));
			continue;
		}
		if (json_object_is_type(val, json_type_array)) {
			json_object *from, *slot;
			const char *fid, *received;
			struct vstate *sub;
			int64_t idx;
			int fk;
			if (json_object_array_length(val) != 2) {
				json_object_array_add(errors, verr("bad_linked_input",
				    "Bad linked input, must be a length-2 list of [node_id, slot_index]", name,
				    extra_input(name, info, true, val)));
				continue;
			}
			from = json_object_array_get_idx(val, 0);
			slot = json_object_array_get_idx(val, 1);
			/* NODES[prompt[val[0]]["class_type"]].returns[val[1]], and its exceptions */
			if (json_object_is_type(from, json_type_array) || json_object_is_type(from, json_type_object)) {
				v->exc_type = "TypeError";
				snprintf(v->exc_msg, sizeof v->exc_msg, "unhashable type: '%s'", py_type_name(from));
				goto exc;
			}
			if (!json_object_is_type(from, json_type_string) ||
			    !json_object_object_get_ex(v->prompt, json_object_get_string(from), NULL)) {
				struct strbuf b = {0};
				py_value(&b, from, true);
				v->exc_type = "KeyError";
				snprintf(v->exc_msg, sizeof v->exc_msg, "%s", b.p ? b.p : "");
				free(b.p);
				goto exc;
			}
			fid = json_object_get_string(from);
			fk = node_class(class_of(v->prompt, fid));
			if (!json_object_is_type(slot, json_type_int) && !json_object_is_type(slot, json_type_boolean)) {
				v->exc_type = "TypeError";
				snprintf(v->exc_msg, sizeof v->exc_msg,
				    "tuple indices must be integers or slices, not %s", py_type_name(slot));
				goto exc;
			}
			idx = json_object_get_int64(slot);
			if (idx < 0)
				idx += defs[fk].nreturns;
			if (idx < 0 || idx >= defs[fk].nreturns) {
				v->exc_type = "IndexError";
				snprintf(v->exc_msg, sizeof v->exc_msg, "tuple index out of range");
				goto exc;
			}
			received = defs[fk].returns[idx];
			if (!kind_is_str || strcmp(received, json_object_get_string(kind)) != 0) {
				struct strbuf b = {0};
				json_object *x = extra_input(name, info, false, NULL);
				sb_printf(&b, "%s, received_type(%s) mismatch input_type(", name, received);
				py_value(&b, kind, false);
				sb_addc(&b, ')');
				json_object_object_add(x, "received_type", json_object_new_string(received));
				json_object_object_add(x, "linked_node", json_object_get(val));
				json_object_array_add(errors, verr("return_type_mismatch",
				    "Return type mismatch between linked nodes", b.p, x));
				free(b.p);
				continue;
			}
			v->visiting[v->nvisit++] = nid;
			sub = validate_node(v, fid);
			v->nvisit--;
			if (sub == NULL)
				goto exc;
			if (!sub->valid)
				valid = false;
			continue;
		}
		if (kind_is_str && strcmp(json_object_get_string(kind), "INT") != 0 &&
		    strcmp(json_object_get_string(kind), "FLOAT") != 0 && strcmp(json_object_get_string(kind), "STRING") != 0)
			continue;   /* a link type given a plain value: ComfyUI lets it through */
		conv = kind_is_str ? convert(json_object_get_string(kind), val, msg, sizeof msg) : json_object_get(val);
		if (conv == NULL && !(!kind_is_str && val == NULL)) {
			struct strbuf d = {0}, m = {0};
			json_object *x = extra_input(name, info, true, val);
			sb_printf(&m, "Failed to convert an input value to a %s value", json_object_get_string(kind));
			sb_printf(&d, "%s, ", name);
			py_value(&d, val, false);
			sb_printf(&d, ", %s", msg);
			json_object_object_add(x, "exception_message", json_object_new_string(msg));
			json_object_array_add(errors, verr("invalid_input_type", m.p, d.p, x));
			free(d.p);
			free(m.p);
			continue;
		}
		if (conv != val)   /* ComfyUI stores the converted value */
			json_object_object_add(inputs, name, json_object_get(conv));
		range_errors(errors, name, kind, opts, conv, info);
		json_object_put(conv);
	}
	prev = vget(v, nid);
	if (prev) {   /* merged with a cycle's verdict, as the Python code does */
		json_object *merged = json_object_get(prev->errors);
		for (size_t i = 0; i < json_object_array_length(errors); i++) {
			json_object *e = json_object_array_get_idx(errors, i);
			if (!contains_err(merged, e))
				json_object_array_add(merged, json_object_get(e));
		}
		valid = prev->valid && valid && json_object_array_length(errors) == 0;
		json_object_put(errors);
		return vset(v, nid, valid, merged);
	}
	valid = valid && json_object_array_length(errors) == 0;
	return vset(v, nid, valid, errors);
exc:
	json_object_put(errors);
	return NULL;
}

static bool
contains_err(json_object *list, json_object *e)
{
	for (size_t i = 0; i < json_object_array_length(list); i++)
		if (json_object_equal(json_object_array_get_idx(list, i), e))
			return true;
	return false;
}

/* has_class: the node has a class_type (possibly null) the simulator does not know. */
static json_object *
missing_type(const char *nid, json_object *node, bool has_class, json_object *class_type)
{
	json_object *meta, *title = NULL, *x = json_object_new_object();
	struct strbuf m = {0}, d = {0};
	json_object *e;
	bool has_title = false;

	if (json_object_is_type(node, json_type_object) &&
	    json_object_object_get_ex(node, "_meta", &meta) && json_object_is_type(meta, json_type_object))
		has_title = json_object_object_get_ex(meta, "title", &title);
	sb_printf(&d, "Node ID '#%s'", nid);
	json_object_object_add(x, "node_id", json_object_new_string(nid));
	if (!has_class) {
		sb_add(&m, "Node '");
		if (title && json_object_get_boolean(title))
			py_value(&m, title, false);
		else
			sb_printf(&m, "ID #%s", nid);
		sb_add(&m, "' has no class_type. The workflow may be corrupted or a custom node is missing.");
		json_object_object_add(x, "class_type", NULL);
	} else {
		if (!has_title)   /* .get("title", class_type): a null title stays null */
			title = class_type;
		sb_add(&m, "Node '");
		py_value(&m, title, false);
		sb_add(&m, "' not found. The custom node may not be installed.");
		json_object_object_add(x, "class_type", json_object_get(class_type));
	}
	json_object_object_add(x, "node_title", json_object_get(title));
	e = verr("missing_node_type", m.p, d.p, x);
	free(m.p);
	free(d.p);
	return e;
}

int
valid_prompt(json_object *prompt, json_object *partial, json_object **error,
    json_object **good_outputs, json_object **node_errors)
{
	struct vctx v = {.prompt = prompt};
	json_object *outputs = json_object_new_array(), *good = json_object_new_array();
	json_object *nerrs = json_object_new_object(), *failed = json_object_new_array();
	int rc = -1;

	*error = NULL;
	v.index = json_object_new_object();
	v.visiting = calloc(MAX_DEPTH + 1, sizeof *v.visiting);
	json_object_object_foreach(prompt, nid, node) {
		json_object *ct;
		int k;
		if (!json_object_is_type(node, json_type_object) ||
		    !json_object_object_get_ex(node, "class_type", &ct)) {
			*error = missing_type(nid, node, false, NULL);
			goto out;
		}
		k = json_object_is_type(ct, json_type_string) ? node_class(json_object_get_string(ct)) : -1;
		if (k < 0) {
			*error = missing_type(nid, node, true, ct);
			goto out;
		}
		if (defs[k].output) {
			bool wanted = partial == NULL;
			for (size_t i = 0; partial && i < json_object_array_length(partial); i++) {
				json_object *p = json_object_array_get_idx(partial, i);
				wanted |= json_object_is_type(p, json_type_string) &&
				    strcmp(json_object_get_string(p), nid) == 0;
			}
			if (wanted)
				json_object_array_add(outputs, json_object_new_string(nid));
		}
	}
	if (json_object_array_length(outputs) == 0) {
		*error = verr("prompt_no_outputs", "Prompt has no outputs", "", NULL);
		goto out;
	}
	for (size_t i = 0; i < json_object_array_length(outputs); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(outputs, i));
		struct vstate *st;
		json_object *reasons;
		v.nvisit = 0;
		v.exc_type = NULL;
		st = validate_node(&v, o);
		if (st == NULL) {
			json_object *x = json_object_new_object(), *tb = json_object_new_array(), *errs;
			json_object_object_add(x, "exception_type", json_object_new_string(v.exc_type));
			json_object_array_add(tb, json_object_new_string(
			    "  File \"comfysim_valid.c\", in validate_inputs\n"));
			json_object_object_add(x, "traceback", tb);
			errs = json_object_new_array();
			json_object_array_add(errs, verr("exception_during_validation",
			    "Exception when validating node", v.exc_msg, x));
			st = vset(&v, o, false, errs);
			if (st == NULL)
				goto out;
		}
		if (st->valid) {
			json_object_array_add(good, json_object_new_string(o));
			continue;
		}
		reasons = json_object_get(st->errors);
		json_object_array_add(failed, reasons);
		for (size_t j = 0; j < v.nst; j++) {
			json_object *entry;
			if (v.st[j].valid || json_object_array_length(v.st[j].errors) == 0)
				continue;
			if (!json_object_object_get_ex(nerrs, v.st[j].nid, &entry)) {
				entry = json_object_new_object();
				json_object_object_add(entry, "errors", json_object_get(v.st[j].errors));
				json_object_object_add(entry, "dependent_outputs", json_object_new_array());
				json_object_object_add(entry, "class_type",
				    json_object_new_string(class_of(prompt, v.st[j].nid)));
				json_object_object_add(nerrs, v.st[j].nid, entry);
			}
			json_object_array_add(json_object_object_get(entry, "dependent_outputs"),
			    json_object_new_string(o));
		}
	}
	if (json_object_array_length(good) == 0) {
		struct strbuf d = {0};
		bool first = true;
		for (size_t i = 0; i < json_object_array_length(failed); i++) {
			json_object *rs = json_object_array_get_idx(failed, i);
			for (size_t j = 0; j < json_object_array_length(rs); j++) {
				json_object *r = json_object_array_get_idx(rs, j);
				sb_printf(&d, "%s%s: %s", first ? "" : "\n",
				    json_object_get_string(json_object_object_get(r, "message")),
				    json_object_get_string(json_object_object_get(r, "details")));
				first = false;
			}
		}
		*error = verr("prompt_outputs_failed_validation", "Prompt outputs failed validation",
		    d.p ? d.p : "", NULL);
		free(d.p);
		goto out;
	}
	rc = 0;
out:
	if (rc == 0) {
		*good_outputs = good;
		good = NULL;
	}
	*node_errors = nerrs;
	json_object_put(good);
	json_object_put(outputs);
	json_object_put(failed);
	for (size_t i = 0; i < v.nst; i++) {
		free(v.st[i].nid);
		json_object_put(v.st[i].errors);
	}
	free(v.st);
	free(v.visiting);
	json_object_put(v.index);
	return rc;
}
