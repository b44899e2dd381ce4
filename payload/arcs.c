/*
 * arcs.c - start --branch (CPython 3.12+): coverage.py arcs from
 * sys.monitoring events and the code objects' bytecode.
 *
 * At the first event of a code object in scope (LINE, BRANCH or JUMP), its
 * bytecode (co_code, de-specialised) and line table (co_lines) are read
 * once into a table:
 *
 *   branches   POP_JUMP_IF_*, FOR_ITER: the line, and for each direction
 *              (fall-through, jump) the line it leads to; a branch event
 *              sets the direction's bit.  Before 3.14 sys.monitoring has
 *              one BRANCH event, which can be disabled only for both
 *              directions at once, so an instruction reports until both
 *              directions have run, then returns DISABLE.  3.14 has one
 *              event per direction, each disabled on its own after its
 *              first report: BRANCH_LEFT is the fall-through (a
 *              POP_JUMP_IF_* not taken, a FOR_ITER that goes on),
 *              BRANCH_RIGHT the jump.  The destination they report is past
 *              the NOT_TAKEN that follows a POP_JUMP_IF_*, or past the
 *              END_FOR and POP_ITER of an exhausted loop (seen on 3.14.10
 *              and 3.15.2), so the direction comes from the event.
 *   jumps      JUMP_FORWARD, JUMP_BACKWARD: the line and where it leads; a
 *              JUMP event (then DISABLE) sets its bit.
 *   falls      where a line's instructions fall through into another line,
 *              or return (to -co_firstlineno, coverage.py's exit); taken
 *              when the line ran and its destination ran.  Not from the
 *              END_FOR (and POP_ITER, 3.14+) of a loop: only the loop's
 *              end reaches them, and that is its FOR_ITER's branch.
 *
 * "Leads to" is the first line the bytecode reaches that is not the
 * source's own, following unconditional jumps; a return reached first is
 * the exit; another branch reached first leaves it to that branch.
 * Executed lines are written as arcs (-n, n) (coverage.py projects arc data
 * to lines by their positive ends).  Nothing here allocates after the first
 * hit of a code object; every function runs with the GIL held.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arcs.h"

enum { K_OTHER, K_LOOP_END, K_BRANCH, K_JUMP_FWD, K_JUMP_BACK, K_RETURN, K_STOP };
#define MAX_WALK 4096

struct branch {
	uint32_t off, next;	/* the instruction, the one after its caches */
	int32_t line, to[2];	/* to[0] fall-through, to[1] jump; 0 unknown */
	uint8_t hit;		/* bit d: direction d ran */
};

struct jump {
	uint32_t off;
	int32_t line, to;
	uint8_t hit;
};

struct fall {
	int32_t from, to;
};

struct cov_code {
	const void *code;	/* a reference is held: the address stays ours */
	struct cov_file *f;
	uint32_t nbr, njmp, nfall;
	struct branch *br;	/* sorted by off */
	struct jump *jmp;	/* sorted by off */
	struct fall *fall;
};

static struct pyapi *py;
static uint8_t kind[256], caches[256];
static int extended_arg = -1;
static struct cov_code **table;		/* open addressing on the code's address */
static size_t cap, used;

/* ---- opcode knowledge, from the interpreter's own opcode module ----------- */

static long opnum(PyObject *opmap, const char *name)
{
	PyObject *v = py->Dict_GetItemString(opmap, name);

	return v ? py->Long_AsLong(v) : -1;
}

static void set_kind(PyObject *opmap, const char *const *names, int k)
{
	for (; *names; names++) {
		long n = opnum(opmap, *names);

		if (n >= 0 && n < 256)
			kind[n] = (uint8_t)k;
	}
}

/* How many cache units follow opcode n, named name. */
static uint8_t cache_units(PyObject *entries, int by_name, PyObject *name, long n)
{
	PyObject *c;
	long v = 0;

	if (!by_name) {
		c = py->List_GetItem(entries, n);	/* borrowed */
		v = c ? py->Long_AsLong(c) : 0;
	} else if ((c = py->Object_CallMethod(entries, "get", "Oi", name, 0))) {
		v = py->Long_AsLong(c);
		py->DecRef(c);
	}
	py->Err_Clear();
	return v > 0 && v < 64 ? (uint8_t)v : 0;
}

/* _inline_cache_entries: a list by opcode (3.12) or a dict by name (3.13). */
static int load_caches(PyObject *mod, PyObject *opmap)
{
	PyObject *entries = py->Object_GetAttrString(mod, "_inline_cache_entries");
	PyObject *items = NULL, *it = NULL, *pair;
	int by_name;

	if (!entries)
		goto out;
	by_name = py->List_Size(entries) < 0;
	py->Err_Clear();
	if (!(items = py->Object_CallMethod(opmap, "items", NULL)) ||
	    !(it = py->Object_GetIter(items)))
		goto out;
	while ((pair = py->Iter_Next(it))) {
		PyObject *num = py->Tuple_GetItem(pair, 1);
		long n = num ? py->Long_AsLong(num) : -1;

		if (n >= 0 && n < 256)
			caches[n] = cache_units(entries, by_name, py->Tuple_GetItem(pair, 0), n);
		py->Err_Clear();
		py->DecRef(pair);
	}
out:
	if (it)
		py->DecRef(it);
	if (items)
		py->DecRef(items);
	if (entries)
		py->DecRef(entries);
	py->Err_Clear();
	return it ? 0 : -1;
}

/* The stdlib's opcode module: the program's, or imported now. */
static PyObject *opcode_module(void)
{
	PyObject *name = py->Unicode_FromString("opcode");
	PyObject *mod = name ? py->Import_GetModule(name) : NULL;

	if (name)
		py->DecRef(name);
	if (mod && mod != py->None)
		return mod;
	if (mod)
		py->DecRef(mod);
	return py->Import_ImportModule("opcode");
}

/* Any relative jump not classified below stops a walk. */
static void unknown_jumps_stop(PyObject *mod)
{
	PyObject *rel = py->Object_GetAttrString(mod, "hasjrel");

	for (Py_ssize_t i = 0; rel && i < py->List_Size(rel); i++) {
		long n = py->Long_AsLong(py->List_GetItem(rel, i));

		if (n >= 0 && n < 256)
			kind[n] = K_STOP;
	}
	if (rel)
		py->DecRef(rel);
	py->Err_Clear();
}

int cov_arcs_init(struct pyapi *api, char *err, size_t len)
{
	static const char *const branch[] = { "POP_JUMP_IF_FALSE", "POP_JUMP_IF_TRUE",
		"POP_JUMP_IF_NONE", "POP_JUMP_IF_NOT_NONE", "FOR_ITER", NULL };
	static const char *const fwd[] = { "JUMP_FORWARD", NULL };
	static const char *const back[] = { "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", NULL };
	static const char *const ret[] = { "RETURN_VALUE", "RETURN_CONST", NULL };
	static const char *const stop[] = { "SEND", "RAISE_VARARGS", "RERAISE", NULL };
	/* 3.14 lists END_ASYNC_FOR in hasjrel (its argument points back at the
	 * loop, for the BRANCH_RIGHT event of an async for that ends), but it
	 * goes on at the next instruction, out of the loop. */
	static const char *const other[] = { "END_ASYNC_FOR", NULL };
	/* Reached only when a FOR_ITER ends its loop (a break jumps past
	 * them): where they lead is that branch's own direction, never a
	 * fall-through of its own. */
	static const char *const loop_end[] = { "END_FOR", "POP_ITER", NULL };
	PyObject *mod, *opmap;

	py = api;
	memset(kind, K_OTHER, sizeof(kind));
	memset(caches, 0, sizeof(caches));
	mod = opcode_module();
	if (!mod || !(opmap = py->Object_GetAttrString(mod, "opmap"))) {
		py->Err_Clear();
		if (mod)
			py->DecRef(mod);
		snprintf(err, len, "--branch: the opcode module is not usable");
		return -1;
	}
	unknown_jumps_stop(mod);
	set_kind(opmap, other, K_OTHER);
	set_kind(opmap, loop_end, K_LOOP_END);
	set_kind(opmap, branch, K_BRANCH);
	set_kind(opmap, fwd, K_JUMP_FWD);
	set_kind(opmap, back, K_JUMP_BACK);
	set_kind(opmap, ret, K_RETURN);
	set_kind(opmap, stop, K_STOP);
	extended_arg = (int)opnum(opmap, "EXTENDED_ARG");
	if (load_caches(mod, opmap) || extended_arg < 0) {
		py->DecRef(opmap);
		py->DecRef(mod);
		snprintf(err, len, "--branch: opcode tables not recognised");
		return -1;
	}
	py->DecRef(opmap);
	py->DecRef(mod);
	py->Err_Clear();
	return 0;
}

/* ---- one code object's table (built at its first event) -------------------- */

struct bytecode {
	const uint8_t *code;
	uint32_t len;		/* bytes */
	int32_t *line;		/* per code unit: line, or -1 */
	int32_t *instr;		/* per code unit: 1 if an instruction starts there */
	int32_t first;		/* co_firstlineno */
};

struct decoded {
	uint8_t op;
	uint32_t next, target;
};

/* The instruction at off (EXTENDED_ARG prefixes folded in). */
static int decode(const struct bytecode *b, uint32_t off, struct decoded *d)
{
	uint32_t arg = 0;

	while (off + 1 < b->len && b->code[off] == extended_arg) {
		arg = (arg << 8) | b->code[off + 1];
		off += 2;
	}
	if (off + 1 >= b->len)
		return -1;
	d->op = b->code[off];
	arg = (arg << 8) | b->code[off + 1];
	d->next = off + 2 * (1 + caches[d->op]);
	d->target = kind[d->op] == K_JUMP_BACK ? d->next - 2 * arg : d->next + 2 * arg;
	return 0;
}

/* The line reached from off, leaving line from: a line, -first (exit) or 0. */
static int32_t walk(const struct bytecode *b, uint32_t off, int32_t from)
{
	struct decoded d;

	for (int i = 0; i < MAX_WALK && off < b->len; i++) {
		int32_t line = b->line[off / 2];

		if (line > 0 && line != from)
			return line;
		if (decode(b, off, &d))
			return 0;
		switch (kind[d.op]) {
		case K_RETURN:
			return -b->first;
		case K_JUMP_FWD:
		case K_JUMP_BACK:
			off = d.target;
			break;
		case K_BRANCH:
		case K_STOP:
			return 0;
		default:
			off = d.next;
		}
	}
	return 0;
}

/* co_lines() into b->line. */
static int read_lines(PyObject *code, struct bytecode *b)
{
	PyObject *ranges = py->Object_CallMethod(code, "co_lines", NULL);
	PyObject *it = ranges ? py->Object_GetIter(ranges) : NULL, *t;

	for (uint32_t i = 0; i < b->len / 2; i++)
		b->line[i] = -1;
	while (it && (t = py->Iter_Next(it))) {
		long start = py->Long_AsLong(py->Tuple_GetItem(t, 0));
		long end = py->Long_AsLong(py->Tuple_GetItem(t, 1));
		PyObject *l = py->Tuple_GetItem(t, 2);
		long line = l && l != py->None ? py->Long_AsLong(l) : -1;

		for (long o = start; o >= 0 && o < end && o < (long)b->len; o += 2)
			b->line[o / 2] = (int32_t)line;
		py->DecRef(t);
	}
	if (it)
		py->DecRef(it);
	if (ranges)
		py->DecRef(ranges);
	py->Err_Clear();
	return it ? 0 : -1;
}

/* Walk the instructions once, counting (fill == 0) or filling the arrays. */
static void scan(const struct bytecode *b, struct cov_code *c, int fill)
{
	struct decoded d;
	uint32_t off = 0, start;
	int32_t line;
	int k;

	c->nbr = c->njmp = c->nfall = 0;
	while (off < b->len) {
		start = off;
		while (off + 1 < b->len && b->code[off] == extended_arg)
			off += 2;
		if (decode(b, start, &d))
			break;
		line = b->line[off / 2];
		k = kind[d.op];
		if (line > 0 && k == K_BRANCH) {
			if (fill)
				c->br[c->nbr] = (struct branch){ off, d.next, line,
					{ walk(b, d.next, line), walk(b, d.target, line) }, 0 };
			c->nbr++;
		} else if (line > 0 && (k == K_JUMP_FWD || k == K_JUMP_BACK)) {
			if (fill)
				c->jmp[c->njmp] = (struct jump){ off, line, walk(b, d.target, line), 0 };
			c->njmp++;
		} else if (line > 0 && k == K_RETURN) {
			if (fill)
				c->fall[c->nfall] = (struct fall){ line, -b->first };
			c->nfall++;
		} else if (line > 0 && k == K_OTHER && d.next < b->len &&
			   b->line[d.next / 2] != line) {
			int32_t to = walk(b, d.next, line);

			if (to && fill)
				c->fall[c->nfall] = (struct fall){ line, to };
			c->nfall += to != 0;
		}
		off = d.next;
	}
}

static struct cov_code *build(PyObject *code, struct cov_file *f)
{
	PyObject *bytes = py->Object_GetAttrString(code, "co_code");
	PyObject *first = py->Object_GetAttrString(code, "co_firstlineno");
	struct bytecode b = { 0 };
	struct cov_code *c = calloc(1, sizeof(*c));

	if (!c || !bytes || !first)
		goto out;
	c->code = code;
	c->f = f;
	b.code = (const uint8_t *)py->Bytes_AsString(bytes);
	b.len = (uint32_t)py->Bytes_Size(bytes) & ~1u;
	b.first = (int32_t)py->Long_AsLong(first);
	if (!b.code || !b.len || !(b.line = malloc(b.len / 2 * sizeof(*b.line))) ||
	    read_lines(code, &b))
		goto out;
	scan(&b, c, 0);
	c->br = calloc(c->nbr + 1, sizeof(*c->br));
	c->jmp = calloc(c->njmp + 1, sizeof(*c->jmp));
	c->fall = calloc(c->nfall + 1, sizeof(*c->fall));
	if (c->br && c->jmp && c->fall)
		scan(&b, c, 1);
	else
		c->nbr = c->njmp = c->nfall = 0;
out:
	free(b.line);
	if (bytes)
		py->DecRef(bytes);
	if (first)
		py->DecRef(first);
	py->Err_Clear();
	return c;	/* possibly empty: then it only says "seen" */
}

/* ---- the table of code objects --------------------------------------------- */

static size_t hash_ptr(const void *p)
{
	return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ULL);
}

static int insert(struct cov_code *c)
{
	size_t i;

	if ((used + 1) * 2 > cap) {
		size_t ncap = cap ? cap * 2 : 1024;
		struct cov_code **n = calloc(ncap, sizeof(*n));

		if (!n)
			return -1;
		for (size_t j = 0; j < cap; j++) {
			if (!table[j])
				continue;
			for (i = hash_ptr(table[j]->code) & (ncap - 1); n[i]; i = (i + 1) & (ncap - 1))
				;
			n[i] = table[j];
		}
		free(table);
		table = n;
		cap = ncap;
	}
	for (i = hash_ptr(c->code) & (cap - 1); table[i]; i = (i + 1) & (cap - 1))
		;
	table[i] = c;
	used++;
	return 0;
}

static void free_code(struct cov_code *c)
{
	free(c->br);
	free(c->jmp);
	free(c->fall);
	free(c);
}

struct cov_code *cov_arcs_code(PyObject *code, struct cov_file *f)
{
	PyObject *t, *v, *tb;
	struct cov_code *c;

	if (cap) {
		for (size_t i = hash_ptr(code) & (cap - 1); table[i]; i = (i + 1) & (cap - 1))
			if (table[i]->code == code)
				return table[i];
	}
	py->Err_Fetch(&t, &v, &tb);	/* never disturb an exception in flight */
	c = build(code, f);
	if (c && insert(c)) {
		free_code(c);
		c = NULL;
	}
	if (c)
		py->IncRef(code);
	py->Err_Restore(t, v, tb);
	return c;
}

/* Index of the entry at off in an array of n entries of size bytes, sorted
 * by their first member, a uint32_t offset; n if there is none. */
static size_t find(const void *base, size_t n, size_t size, long off)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		uint32_t at = *(const uint32_t *)((const char *)base + mid * size);

		if ((long)at < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && (long)*(const uint32_t *)((const char *)base + lo * size) == off ?
	       lo : n;
}

int cov_arcs_branch(struct cov_code *c, long src, long dst)
{
	size_t i = find(c->br, c->nbr, sizeof(*c->br), src);

	if (i == c->nbr)
		return 1;	/* not one we know: stop hearing about it */
	c->br[i].hit |= (uint32_t)dst == c->br[i].next ? 1 : 2;
	return c->br[i].hit == 3;
}

void cov_arcs_taken(struct cov_code *c, long src, int d)
{
	size_t i = find(c->br, c->nbr, sizeof(*c->br), src);

	if (i < c->nbr)
		c->br[i].hit |= 1 << d;
}

void cov_arcs_jump(struct cov_code *c, long src)
{
	size_t i = find(c->jmp, c->njmp, sizeof(*c->jmp), src);

	if (i < c->njmp)
		c->jmp[i].hit = 1;
}

/* ---- snapshots -------------------------------------------------------------- */

static int ran(const struct cov_file *f, int32_t line)
{
	return line < 0 || cov_store_ran(f, line);
}

static int add_arc(struct cov_snap_file *sf, int32_t from, int32_t to)
{
	if (sf->narcs == sf->arcs_cap) {
		uint32_t n = sf->arcs_cap ? sf->arcs_cap * 2 : 64;
		int32_t *a = realloc(sf->arcs, n * 2 * sizeof(*a));

		if (!a)
			return -1;
		sf->arcs = a;
		sf->arcs_cap = n;
	}
	sf->arcs[2 * sf->narcs] = from;
	sf->arcs[2 * sf->narcs + 1] = to;
	sf->narcs++;
	return 0;
}

static int code_arcs(const struct cov_code *c, struct cov_snap_file *sf)
{
	int rc = 0;

	for (uint32_t i = 0; i < c->nbr; i++)
		for (int d = 0; d < 2; d++)
			if (c->br[i].hit & (1 << d) && c->br[i].to[d])
				rc |= add_arc(sf, c->br[i].line, c->br[i].to[d]);
	for (uint32_t i = 0; i < c->njmp; i++)
		if (c->jmp[i].hit && c->jmp[i].to)
			rc |= add_arc(sf, c->jmp[i].line, c->jmp[i].to);
	for (uint32_t i = 0; i < c->nfall; i++)
		if (ran(c->f, c->fall[i].from) && ran(c->f, c->fall[i].to))
			rc |= add_arc(sf, c->fall[i].from, c->fall[i].to);
	return rc;
}

int cov_arcs_snapshot(struct cov_snap *s)
{
	s->has_arcs = 1;
	for (size_t i = 0; i < cap; i++) {
		struct cov_code *c = table[i];

		if (c && c->f->snap_index >= 0 && (size_t)c->f->snap_index < s->n &&
		    code_arcs(c, &s->files[c->f->snap_index]))
			return -1;
	}
	return 0;
}

void cov_arcs_zero(void)
{
	for (size_t i = 0; i < cap; i++) {
		if (!table[i])
			continue;
		for (uint32_t j = 0; j < table[i]->nbr; j++)
			table[i]->br[j].hit = 0;
		for (uint32_t j = 0; j < table[i]->njmp; j++)
			table[i]->jmp[j].hit = 0;
	}
}

void cov_arcs_clear(void)
{
	for (size_t i = 0; i < cap; i++) {
		if (!table[i])
			continue;
		py->DecRef((PyObject *)table[i]->code);
		free_code(table[i]);
	}
	free(table);
	table = NULL;
	cap = used = 0;
}
