/*
 * variant.c - the instrumented copy of a code object (a "variant") for the
 * probe collector of 3.9-3.11 (payload/probes.c): its parts read through
 * the code object's attributes, rewritten by bytecode.c, and put together
 * with code.replace(), the one constructor whose call is the same on 3.9,
 * 3.10 and 3.11.  The opcode numbers come from the interpreter's own opcode
 * module.  GIL held.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "bytecode.h"
#include "variant.h"

static struct pyapi *py;
static struct cov_optab tab;
static PyObject *hit;
static cov_nested_fn *nested;

/* Include/object.h, Include/cpython/tupleobject.h (3.9-3.11, default
 * builds): ob_type follows ob_refcnt, a tuple's items follow ob_size. */
#define OB_TYPE(o)	(((void **)(o))[1])
#define TUPLE_ITEMS(t)	((PyObject **)((char *)(t) + 3 * sizeof(void *)))


long cov_int_attr(PyObject *o, const char *name)
{
	PyObject *v = py->Object_GetAttrString(o, name);
	long r = v ? py->Long_AsLong(v) : -1;

	if (v)
		py->DecRef(v);
	return r;
}

struct parts {
	PyObject *bytes, *consts, *lines, *xtab;	/* borrowed from attributes */
	long first, stack;
};

static const char *line_attr(void)
{
	return tab.minor == 9 ? "co_lnotab" : "co_linetable";
}

static int get_parts(PyObject *code, struct parts *p)
{
	memset(p, 0, sizeof(*p));
	p->bytes = py->Object_GetAttrString(code, "co_code");
	p->consts = py->Object_GetAttrString(code, "co_consts");
	p->lines = py->Object_GetAttrString(code, line_attr());
	if (tab.minor >= 11)
		p->xtab = py->Object_GetAttrString(code, "co_exceptiontable");
	p->first = cov_int_attr(code, "co_firstlineno");
	p->stack = cov_int_attr(code, "co_stacksize");
	return p->bytes && p->consts && p->lines && (tab.minor < 11 || p->xtab) &&
	       p->first >= 0 && p->stack >= 0 ? 0 : -1;
}

static void put_parts(struct parts *p)
{
	PyObject *o[] = { p->bytes, p->consts, p->lines, p->xtab };

	for (size_t i = 0; i < 4; i++)
		if (o[i])
			py->DecRef(o[i]);
}

static int decode_lines(struct parts *p, struct cov_loc *locs, size_t n)
{
	const uint8_t *t = (const uint8_t *)py->Bytes_AsString(p->lines);
	size_t len = (size_t)py->Bytes_Size(p->lines);

	if (tab.minor == 9)
		return cov_lnotab_decode(t, len, (int)p->first, locs, n);
	if (tab.minor == 10)
		return cov_linetable310_decode(t, len, (int)p->first, locs, n);
	return cov_linetable311_decode(t, len, (int)p->first, locs, n);
}

static PyObject *bytes_of(uint8_t *b, size_t len)
{
	PyObject *o = b ? py->Bytes_FromStringAndSize((const char *)b, (Py_ssize_t)len) : NULL;

	free(b);
	return o;
}

static PyObject *encode_lines(struct cov_rewrite *r, long first)
{
	size_t len = 0;
	uint8_t *b;

	if (tab.minor == 9)
		b = cov_lnotab_encode(r->out_locs, r->nout, (int)first, &len);
	else if (tab.minor == 10)
		b = cov_linetable310_encode(r->out_locs, r->nout, (int)first, &len);
	else
		b = cov_linetable311_encode(r->out_locs, r->nout, (int)first, &len);
	return bytes_of(b, len);
}

static PyObject *encode_xtab(struct parts *p, struct cov_rewrite *r)
{
	const uint8_t *t = (const uint8_t *)py->Bytes_AsString(p->xtab);
	size_t len = (size_t)py->Bytes_Size(p->xtab), max = len / 4 + 1;
	struct cov_xentry *e = calloc(max, sizeof(*e));
	int k = e ? cov_xtable_decode(t, len, e, max) : -1;
	uint8_t *out = NULL;

	for (int i = 0; i < k; i++)
		if (e[i].start > r->n || e[i].end > r->n || e[i].target > r->n)
			k = -1;
	if (k >= 0)
		out = cov_xtable_encode(e, (size_t)k, r->map, &len);
	free(e);
	return bytes_of(out, len);
}

/* The variant's co_consts: nested code instrumented, each probe's offset,
 * then hit, last: what tells a variant (cov_probes_variant). */
static PyObject *new_consts(PyObject *consts, struct cov_rewrite *r, int depth)
{
	Py_ssize_t nc = py->Tuple_Size(consts);
	PyObject *t = py->Tuple_New(nc + 1 + (Py_ssize_t)r->nprobes);

	if (!t)
		return NULL;
	for (Py_ssize_t i = 0; i < nc; i++) {
		PyObject *c = TUPLE_ITEMS(consts)[i];

		if (OB_TYPE(c) == py->CodeType) {
			TUPLE_ITEMS(t)[i] = nested(c, depth + 1);
		} else {
			py->IncRef(c);
			TUPLE_ITEMS(t)[i] = c;
		}
	}
	py->IncRef(hit);
	TUPLE_ITEMS(t)[nc + (Py_ssize_t)r->nprobes] = hit;
	/* Out of the gc's lists: no cycle can pass through it (code objects
	 * are not tracked, hit holds no reference), and 200,000 tuples
	 * left in would make the first full collections of a big program
	 * 150 ms longer, holding the GIL (bench/probepass.py). */
	py->Object_GC_UnTrack(t);
	for (size_t k = 0; k < r->nprobes; k++)
		if (!(TUPLE_ITEMS(t)[nc + k] = py->Long_FromLong(2 * (long)r->probes[k]))) {
			py->DecRef(t);	/* a NULL item is allowed in tuple_dealloc */
			return NULL;
		}
	return t;
}

static int kw(PyObject *d, const char *name, PyObject *v)
{
	int rc = v ? py->Dict_SetItemString(d, name, v) : -1;

	if (v)
		py->DecRef(v);
	return rc;
}

/* code.replace(...) with the rewritten parts: the one constructor that
 * is the same call on 3.9, 3.10 and 3.11. */
static PyObject *replace(PyObject *code, struct parts *p, struct cov_rewrite *r, int depth)
{
	PyObject *d = py->Dict_New(), *args = py->Tuple_New(0), *meth = NULL, *v = NULL;

	if (!d || !args ||
	    kw(d, "co_code", py->Bytes_FromStringAndSize((const char *)r->out,
							 (Py_ssize_t)(2 * r->nout))) ||
	    kw(d, "co_consts", new_consts(p->consts, r, depth)) ||
	    kw(d, "co_stacksize", py->Long_FromLong(p->stack + r->stack_growth)) ||
	    kw(d, line_attr(), encode_lines(r, p->first)) ||
	    (tab.minor >= 11 && kw(d, "co_exceptiontable", encode_xtab(p, r))))
		goto out;
	if ((meth = py->Object_GetAttrString(code, "replace")))
		v = py->Object_Call(meth, args, d);
out:
	if (meth)
		py->DecRef(meth);
	if (args)
		py->DecRef(args);
	if (d)
		py->DecRef(d);
	return v;
}

PyObject *cov_variant_make(PyObject *code, int depth, cov_nested_fn *fn,
			   uint32_t **probes, uint32_t **lines, uint32_t *nprobes)
{
	struct parts p;
	struct cov_rewrite r = { 0 };
	struct cov_loc *locs = NULL;
	PyObject *v = NULL;

	if (get_parts(code, &p))
		goto out;
	r.code = (const uint8_t *)py->Bytes_AsString(p.bytes);
	r.n = (size_t)py->Bytes_Size(p.bytes) / 2;
	r.first_const = (uint32_t)py->Tuple_Size(p.consts);
	if (!r.n || !(locs = malloc(r.n * sizeof(*locs))) || decode_lines(&p, locs, r.n))
		goto out;
	r.locs = locs;
	if (cov_rewrite(&tab, &r))
		goto out;
	nested = fn;
	v = replace(code, &p, &r, depth);
	if (v) {
		for (size_t k = 0; k < r.nprobes; k++)
			r.probes[k] *= 2;	/* units to bytes */
		*probes = r.probes;	/* theirs now */
		*lines = r.probe_lines;
		*nprobes = (uint32_t)r.nprobes;
		r.probes = r.probe_lines = NULL;
	}
	cov_rewrite_free(&r);
out:
	free(locs);
	put_parts(&p);
	py->Err_Clear();
	return v;
}

static long op_of(PyObject *map, const char *name)
{
	PyObject *v = py->Dict_GetItemString(map, name);	/* borrowed */
	long n = v ? py->Long_AsLong(v) : -1;

	return n >= 0 && n < 256 ? n : -1;
}

/* The opcodes a probe is made of, by name; argument and backward-jump
 * flags; 3.11's cache units (_inline_cache_entries, a list by opcode). */
static int name_ops(PyObject *mod, PyObject *map, long have_arg)
{
	static const char *const names[] = { "EXTENDED_ARG", "NOP", "JUMP_FORWARD",
		"LOAD_CONST", "CALL_FUNCTION", "POP_TOP", "PUSH_NULL", "PRECALL",
		"RESUME", "CALL" };
	uint8_t *fields[] = { &tab.ext, &tab.nop, &tab.jump_fwd, &tab.load_const,
		&tab.call, &tab.pop_top, &tab.push_null, &tab.precall, &tab.resume,
		&tab.call };
	PyObject *names_list = py->Object_GetAttrString(mod, "opname"), *caches;
	int need = tab.minor >= 11 ? 10 : 6;

	for (int k = 0; k < need; k++) {
		long n = k == 4 && tab.minor >= 11 ? 0 : op_of(map, names[k]);

		if (n < 0)
			goto fail;
		if (!(k == 4 && tab.minor >= 11))
			*fields[k] = (uint8_t)n;
	}
	for (long op = 0; op < 256 && names_list; op++) {
		const char *nm = py->Unicode_AsUTF8AndSize(py->List_GetItem(names_list, op), NULL);

		if (op >= have_arg)
			tab.flags[op] |= BC_HASARG;
		if (nm && strstr(nm, "JUMP_BACKWARD"))
			tab.flags[op] |= BC_BACK;
		if (nm && tab.minor < 11 && (!strcmp(nm, "SETUP_FINALLY") ||
			   !strcmp(nm, "SETUP_WITH") || !strcmp(nm, "SETUP_ASYNC_WITH")))
			tab.flags[op] |= BC_HANDLER;
	}
	if (names_list)
		py->DecRef(names_list);
	if (tab.minor < 11)
		return 0;
	if (!(caches = py->Object_GetAttrString(mod, "_inline_cache_entries")))
		return -1;
	for (Py_ssize_t op = 0; op < 256 && op < py->List_Size(caches); op++) {
		long c = py->Long_AsLong(py->List_GetItem(caches, op));

		tab.caches[op] = c > 0 && c < 64 ? (uint8_t)c : 0;
	}
	py->DecRef(caches);
	return 0;
fail:
	if (names_list)
		py->DecRef(names_list);
	return -1;
}

int cov_variant_init(struct pyapi *api, PyObject *hit_fn, const struct cov_optab **t)
{
	PyObject *mod, *map = NULL;
	static const char *const lists[] = { "hasjrel", "hasjabs" };
	long have_arg;
	int rc = -1;

	py = api;
	hit = hit_fn;
	*t = &tab;
	mod = py->Import_ImportModule("opcode");
	memset(&tab, 0, sizeof(tab));
	tab.minor = (py->hex >> 16) & 0xff;
	if (!mod || !(map = py->Object_GetAttrString(mod, "opmap")) ||
	    (have_arg = cov_int_attr(mod, "HAVE_ARGUMENT")) <= 0)
		goto out;
	for (int k = 0; k < 2; k++) {
		PyObject *l = py->Object_GetAttrString(mod, lists[k]);

		for (Py_ssize_t i = 0; l && i < py->List_Size(l); i++) {
			long op = py->Long_AsLong(py->List_GetItem(l, i));

			if (op >= 0 && op < 256)
				tab.flags[op] |= k ? BC_JABS : BC_JREL;
		}
		if (l)
			py->DecRef(l);
	}
	rc = name_ops(mod, map, have_arg);
out:
	if (map)
		py->DecRef(map);
	if (mod)
		py->DecRef(mod);
	py->Err_Clear();
	return rc;
}
