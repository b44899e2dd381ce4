/*
 * bytecode.c - an instrumented copy of a CPython 3.9-3.11 code object's
 * bytecode: a probe before every instruction that starts a line, jumps
 * and the line and exception tables moved to match.  Pure C on arrays:
 * payload/probes.c turns Python objects into these and back.
 *
 * A probe (3.9, 3.10; 3.11 adds PUSH_NULL and PRECALL, and cache units):
 *
 *	NOP           skip	<- its oparg already holds the jump distance
 *	LOAD_CONST    hit	   the probe function (probes.c, METH_O)
 *	LOAD_CONST    off	   this NOP's byte offset
 *	CALL_FUNCTION 1
 *	POP_TOP
 *
 * The first call records the line and turns the NOP into JUMP_FORWARD in
 * place: one byte, the same length, so a frame running this code sees it
 * at once (Python/ceval.c reads each instruction from the buffer).  The
 * block begins with NOP and ends with POP_TOP, which no 3.11
 * superinstruction takes as its second half (Python/specialize.c,
 * _PyCode_Quicken: LOAD_FAST__LOAD_FAST and the like), so the patched
 * unit is never run by an instruction before it.
 *
 * Which instructions start a line is the tracer's rule, so that the lines
 * probes see are the ones the trace function saw: a line event comes where
 * the line differs from the previous instruction's (3.9 ceval.c,
 * maybe_call_line_trace; 3.10 the start of each address range; 3.11
 * `line != lastline`), never for an instruction with no line (-1, 3.10+).
 * On 3.11 nothing before or at the first RESUME is traced (the frame is
 * not complete until it: _co_firsttraceable) and the instruction after it
 * always reports its line, as lastline starts at -1 there.  On 3.9 and
 * 3.10 the first instruction of an exception handler (a SETUP_FINALLY,
 * SETUP_WITH or SETUP_ASYNC_WITH target) always reports its line: ceval.c
 * sets instr_prev = INT_MAX after an exception, so a handler whose line
 * goes on from the code before it still gets its line event.
 *
 * Jumps to an instruction land on its probe.  Each probe unit carries its
 * instruction's line (3.11: and no columns), so tracebacks, f_lineno and
 * a debugger's line events are as before; the instructions keep their own
 * positions.  A probe lies inside the exception-table ranges of its
 * instruction (3.11), so a signal's exception raised at its CALL is
 * handled as one raised at the instruction.
 */
#include <stdlib.h>
#include <string.h>
#include "bytecode.h"

struct instr {
	uint32_t start, units;	/* old: first unit (a prefix), all units */
	uint32_t arg, target;	/* target: old unit of a jump */
	uint8_t op, pre, next;	/* EXTENDED_ARG prefixes, old and new */
	uint8_t probe;
	uint8_t handler;	/* an exception handler begins here (3.9, 3.10) */
	uint32_t nstart;	/* new unit of its block (its probe, if any) */
};

static int ext_needed(uint32_t arg)
{
	return arg < 1u << 8 ? 0 : arg < 1u << 16 ? 1 : arg < 1u << 24 ? 2 : 3;
}

static int is_jump(const struct cov_optab *t, uint8_t op)
{
	return t->flags[op] & (BC_JREL | BC_JABS);
}

/* Split the code into instructions, each with its prefixes and caches. */
static size_t decode(const struct cov_optab *t, const uint8_t *c, size_t n,
		     struct instr *in)
{
	size_t k = 0, i = 0;

	while (i < n) {
		struct instr *x = &in[k++];
		uint32_t acc = 0;

		memset(x, 0, sizeof(*x));
		x->start = (uint32_t)i;
		while (i < n && c[2 * i] == t->ext && x->pre < 3) {
			acc = (acc | c[2 * i + 1]) << 8;
			x->pre++;
			i++;
		}
		if (i >= n)
			return 0;
		x->op = c[2 * i];
		x->arg = acc | c[2 * i + 1];
		i += 1 + t->caches[x->op];
		x->units = (uint32_t)(i - x->start);
		x->next = x->pre;
	}
	return i == n ? k : 0;
}

/* The instruction that begins at u (k for the code's end), or -1. */
static long starts(const struct instr *in, size_t k, size_t n, long u)
{
	size_t lo = 0, hi = k;

	if (u == (long)n)
		return (long)k;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (in[mid].start == (uint32_t)u)
			return (long)mid;
		if (in[mid].start < (uint32_t)u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Old jump targets, in units; 0, or -1 if one is not an instruction. */
static int targets(const struct cov_optab *t, struct instr *in, size_t k, size_t n)
{
	for (size_t j = 0; j < k; j++) {
		struct instr *x = &in[j];
		uint32_t end = x->start + x->units;
		long tg, at;

		if (!is_jump(t, x->op))
			continue;
		if (t->flags[x->op] & BC_JABS)
			tg = t->minor == 9 ? x->arg / 2 : x->arg;
		else if (t->flags[x->op] & BC_BACK)
			tg = (long)end - x->arg;
		else
			tg = (long)end + (t->minor == 9 ? x->arg / 2 : x->arg);
		if (tg < 0 || (size_t)tg > n || (at = starts(in, k, n, tg)) < 0)
			return -1;
		x->target = (uint32_t)tg;
		if ((t->flags[x->op] & BC_HANDLER) && at < (long)k)
			in[at].handler = 1;
	}
	return 0;
}

/* Which instructions get a probe: see the top of the file. */
static size_t choose(const struct cov_optab *t, struct instr *in, size_t k,
		     const struct cov_loc *locs)
{
	int prev = -1, open = t->minor < 11;
	size_t np = 0;

	for (size_t j = 0; j < k; j++) {
		int line = locs[in[j].start].line;

		if (!open) {
			open = in[j].op == t->resume;
			continue;
		}
		in[j].probe = line >= 0 && (line != prev || in[j].handler);
		np += in[j].probe;
		prev = line;
	}
	return np;
}

static uint32_t probe_units(const struct cov_optab *t, const struct cov_rewrite *r,
			    uint32_t idx)
{
	uint32_t u = 1 + ext_needed(r->hit_const) + 1 +
		     ext_needed(r->first_const + idx) + 1 + 1 + t->caches[t->call] + 1;

	if (t->minor >= 11)
		u += 1 + 1 + t->caches[t->precall];	/* PUSH_NULL, PRECALL */
	return u;
}

static uint32_t op_unit(const struct cov_optab *t, const struct cov_rewrite *r,
			const struct instr *x, uint32_t pidx)
{
	return x->nstart + (x->probe ? probe_units(t, r, pidx) : 0) + x->next;
}

/* A jump's argument in the new layout, or -1 if it would point backwards
 * where it cannot. */
static long new_arg(const struct cov_optab *t, const struct cov_rewrite *r,
		    const struct instr *x, uint32_t pidx, const uint32_t *map)
{
	long end = op_unit(t, r, x, pidx) + 1 + t->caches[x->op], tg = map[x->target];
	long a;

	if (t->flags[x->op] & BC_JABS)
		a = tg;
	else if (t->flags[x->op] & BC_BACK)
		a = end - tg;
	else
		a = tg - end;
	if (a < 0)
		return -1;
	return t->minor == 9 ? 2 * a : a;
}

/* Lay the blocks out until every jump's prefixes hold its argument
 * (prefixes only grow, so this ends). */
static int layout(const struct cov_optab *t, struct cov_rewrite *r,
		  struct instr *in, size_t k, uint32_t *map)
{
	for (int round = 0; round < 8; round++) {
		uint32_t pos = 0, pidx = 0;
		int grew = 0;

		for (size_t j = 0; j < k; j++) {
			in[j].nstart = pos;
			map[in[j].start] = pos;
			pos += (in[j].probe ? probe_units(t, r, pidx++) : 0) + in[j].next +
			       1 + t->caches[in[j].op];
		}
		map[r->n] = pos;
		r->nout = pos;
		pidx = 0;
		for (size_t j = 0; j < k; j++) {
			long a = is_jump(t, in[j].op) ? new_arg(t, r, &in[j], pidx, map) : 0;

			if (a < 0)
				return -1;
			if (ext_needed((uint32_t)a) > in[j].next) {
				in[j].next = (uint8_t)ext_needed((uint32_t)a);
				grew = 1;
			}
			pidx += in[j].probe;
		}
		if (!grew)
			return 0;
	}
	return -1;
}

struct emit {
	uint8_t *out;
	struct cov_loc *locs;
	uint32_t at;
};

static void unit(struct emit *e, uint8_t op, uint8_t arg, const struct cov_loc *loc)
{
	e->out[2 * e->at] = op;
	e->out[2 * e->at + 1] = arg;
	e->locs[e->at++] = *loc;
}

/* op with its EXTENDED_ARG prefixes (ext of them) and zeroed caches. */
static void instr_out(const struct cov_optab *t, struct emit *e, uint8_t op,
		      uint32_t arg, int ext, const struct cov_loc *loc)
{
	for (int s = ext; s > 0; s--)
		unit(e, t->ext, (uint8_t)(arg >> (8 * s)), loc);
	unit(e, op, (uint8_t)arg, loc);
	for (int c = 0; c < t->caches[op]; c++)
		unit(e, 0, 0, loc);	/* CACHE */
}

static void probe_out(const struct cov_optab *t, struct cov_rewrite *r, struct emit *e,
		      uint32_t pidx, int line)
{
	struct cov_loc loc = { line, line, -1, -1 };
	uint32_t len = probe_units(t, r, pidx), cst = r->first_const + pidx;

	r->probes[pidx] = e->at;
	r->probe_lines[pidx] = (uint32_t)line;
	unit(e, t->nop, (uint8_t)(t->minor == 9 ? 2 * (len - 1) : len - 1), &loc);
	if (t->minor >= 11)
		unit(e, t->push_null, 0, &loc);
	instr_out(t, e, t->load_const, r->hit_const, ext_needed(r->hit_const), &loc);
	instr_out(t, e, t->load_const, cst, ext_needed(cst), &loc);
	if (t->minor >= 11)
		instr_out(t, e, t->precall, 1, 0, &loc);
	instr_out(t, e, t->call, 1, 0, &loc);
	unit(e, t->pop_top, 0, &loc);
}

static void emit_all(const struct cov_optab *t, struct cov_rewrite *r,
		     const struct instr *in, size_t k)
{
	struct emit e = { r->out, r->out_locs, 0 };
	uint32_t pidx = 0;

	for (size_t j = 0; j < k; j++) {
		const struct instr *x = &in[j];
		uint32_t arg = x->arg, op_at = x->start + x->pre;

		if (x->probe)
			probe_out(t, r, &e, pidx, r->locs[x->start].line);
		if (is_jump(t, x->op))
			arg = (uint32_t)new_arg(t, r, x, pidx, r->map);
		pidx += x->probe;
		/* the old prefixes' units, then the new ones, map in order */
		for (uint32_t u = 1; u < x->units; u++)
			r->map[x->start + u] = e.at + x->next - x->pre + u;
		instr_out(t, &e, x->op, arg, x->next, &r->locs[op_at]);
	}
}

int cov_rewrite(const struct cov_optab *t, struct cov_rewrite *r)
{
	struct instr *in = calloc(r->n ? r->n : 1, sizeof(*in));
	size_t k = in ? decode(t, r->code, r->n, in) : 0;

	r->out = NULL;
	r->out_locs = NULL;
	r->probes = r->probe_lines = NULL;
	r->map = calloc(r->n + 1, sizeof(*r->map));
	if (!k || !r->map || targets(t, in, k, r->n))
		goto fail;
	r->nprobes = choose(t, in, k, r->locs);
	r->hit_const = r->first_const + (uint32_t)r->nprobes;
	r->probes = calloc(r->nprobes + 1, sizeof(*r->probes));
	r->probe_lines = calloc(r->nprobes + 1, sizeof(*r->probe_lines));
	if (!r->probes || !r->probe_lines || layout(t, r, in, k, r->map))
		goto fail;
	r->out = malloc(2 * r->nout);
	r->out_locs = malloc(r->nout * sizeof(*r->out_locs));
	if (!r->out || !r->out_locs)
		goto fail;
	emit_all(t, r, in, k);
	r->stack_growth = r->nprobes ? (t->minor >= 11 ? 3 : 2) : 0;
	free(in);
	return 0;
fail:
	free(in);
	cov_rewrite_free(r);
	return -1;
}

void cov_rewrite_free(struct cov_rewrite *r)
{
	free(r->out);
	free(r->out_locs);
	free(r->map);
	free(r->probes);
	free(r->probe_lines);
	r->out = NULL;
	r->out_locs = NULL;
	r->map = r->probes = r->probe_lines = NULL;
}

/* ---- line tables --------------------------------------------------------- */

static void fill(struct cov_loc *locs, size_t from, size_t to, size_t n, int line)
{
	for (size_t u = from; u < to && u < n; u++)
		locs[u] = (struct cov_loc){ line, line, -1, -1 };
}

/* 3.9 co_lnotab: (byte delta, signed line delta) pairs; a line applies
 * from its pair's address on (3.9 Objects/codeobject.c, PyCode_Addr2Line). */
int cov_lnotab_decode(const uint8_t *tab, size_t len, int firstline,
		      struct cov_loc *locs, size_t n)
{
	size_t addr = 0, u = 0;
	int line = firstline;

	for (size_t i = 0; i + 1 < len; i += 2) {
		addr += tab[i];
		fill(locs, u, addr / 2, n, line);
		if (addr / 2 > u)
			u = addr / 2;
		line += (int8_t)tab[i + 1];
	}
	fill(locs, u, n, n, line);
	return 0;
}

struct buf {
	uint8_t *p;
	size_t len, cap;
	int failed;
};

static void put(struct buf *b, uint8_t v)
{
	if (b->len == b->cap) {
		uint8_t *np = realloc(b->p, b->cap ? 2 * b->cap : 64);

		if (!np) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = b->cap ? 2 * b->cap : 64;
	}
	b->p[b->len++] = v;
}

static uint8_t *done(struct buf *b, size_t *len)
{
	if (b->failed) {
		free(b->p);
		return NULL;
	}
	*len = b->len;
	return b->p ? b->p : calloc(1, 1);
}

/* The compiler's own splitting (3.9 Python/compile.c, assemble_lnotab):
 * address first, in steps of 255, then the line in steps of 127/-128. */
uint8_t *cov_lnotab_encode(const struct cov_loc *locs, size_t n, int firstline,
			   size_t *len)
{
	struct buf b = { 0 };
	int line = firstline;
	size_t last = 0;

	for (size_t u = 0; u < n; u++) {
		int ld = locs[u].line - line;
		size_t ad = 2 * (u - last);

		if (!ld)
			continue;
		for (; ad > 255; ad -= 255) {
			put(&b, 255);
			put(&b, 0);
		}
		for (; ld > 127; ld -= 127, ad = 0) {
			put(&b, (uint8_t)ad);
			put(&b, 127);
		}
		for (; ld < -128; ld += 128, ad = 0) {
			put(&b, (uint8_t)ad);
			put(&b, (uint8_t)-128);
		}
		put(&b, (uint8_t)ad);
		put(&b, (uint8_t)(int8_t)ld);
		line = locs[u].line;
		last = u;
	}
	return done(&b, len);
}

/* 3.10 co_linetable: (byte length, signed line delta) per address range,
 * -128 for no line (3.10 Objects/lnotab_notes.txt). */
int cov_linetable310_decode(const uint8_t *tab, size_t len, int firstline,
			    struct cov_loc *locs, size_t n)
{
	size_t addr = 0;
	int line = firstline;

	fill(locs, 0, n, n, -1);
	for (size_t i = 0; i + 1 < len; i += 2) {
		int8_t ld = (int8_t)tab[i + 1];

		if (ld != -128)
			line += ld;
		fill(locs, addr / 2, (addr + tab[i]) / 2, n, ld == -128 ? -1 : line);
		addr += tab[i];
	}
	return 0;
}

uint8_t *cov_linetable310_encode(const struct cov_loc *locs, size_t n,
				 int firstline, size_t *len)
{
	struct buf b = { 0 };
	int cur = firstline;

	for (size_t u = 0; u < n;) {
		int line = locs[u].line, ld = line < 0 ? -128 : line - cur;
		size_t v = u, bytes;

		while (v < n && locs[v].line == line)
			v++;
		bytes = 2 * (v - u);
		for (; line >= 0 && ld > 127; ld -= 127) {
			put(&b, 0);
			put(&b, 127);
		}
		for (; line >= 0 && ld < -127; ld += 127) {
			put(&b, 0);
			put(&b, (uint8_t)-127);
		}
		for (; bytes > 254; bytes -= 254) {
			put(&b, 254);
			put(&b, (uint8_t)(int8_t)ld);
			ld = line < 0 ? -128 : 0;
		}
		put(&b, (uint8_t)bytes);
		put(&b, (uint8_t)(int8_t)ld);
		if (line >= 0)
			cur = line;
		u = v;
	}
	return done(&b, len);
}

/* 3.11 co_linetable (Objects/locations.md): entries of 1-8 units, a first
 * byte 1cccclll (code, length - 1), then the code's fields. */
static unsigned varint(const uint8_t *tab, size_t len, size_t *i)
{
	unsigned v = 0, shift = 0, b;

	do {
		b = *i < len ? tab[(*i)++] : 0;
		v |= (b & 63) << shift;
		shift += 6;
	} while ((b & 64) && shift < 32);
	return v;
}

static int svarint(const uint8_t *tab, size_t len, size_t *i)
{
	unsigned v = varint(tab, len, i);

	return v & 1 ? -(int)(v >> 1) : (int)(v >> 1);
}

int cov_linetable311_decode(const uint8_t *tab, size_t len, int firstline,
			    struct cov_loc *locs, size_t n)
{
	size_t i = 0, u = 0;
	int line = firstline;

	fill(locs, 0, n, n, -1);
	while (i < len && u < n) {
		uint8_t first = tab[i++];
		int code = (first >> 3) & 15, units = (first & 7) + 1;
		struct cov_loc l = { -1, -1, -1, -1 };

		if (!(first & 128))
			return -1;
		if (code == 14) {
			line += svarint(tab, len, &i);
			l.line = line;
			l.endline = line + (int)varint(tab, len, &i);
			l.col = (int)varint(tab, len, &i) - 1;
			l.endcol = (int)varint(tab, len, &i) - 1;
		} else if (code == 13) {
			line += svarint(tab, len, &i);
			l = (struct cov_loc){ line, line, -1, -1 };
		} else if (code >= 10 && code <= 12) {
			line += code - 10;
			l = (struct cov_loc){ line, line, i < len ? tab[i] : 0,
					      i + 1 < len ? tab[i + 1] : 0 };
			i += 2;
		} else if (code < 10) {
			uint8_t s = i < len ? tab[i++] : 0;

			l = (struct cov_loc){ line, line, code * 8 + ((s >> 4) & 7), 0 };
			l.endcol = l.col + (s & 15);
		}
		for (int k = 0; k < units && u < n; k++)
			locs[u++] = l;
	}
	return 0;
}

static void put_varint(struct buf *b, unsigned v)
{
	for (; v >= 64; v >>= 6)
		put(b, (uint8_t)(64 | (v & 63)));
	put(b, (uint8_t)v);
}

static void put_svarint(struct buf *b, int v)
{
	put_varint(b, v < 0 ? ((unsigned)-v << 1) | 1 : (unsigned)v << 1);
}

static int same(const struct cov_loc *a, const struct cov_loc *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* Every entry in the no-location (15), no-column (13) or long (14) form:
 * each holds any position the short forms do. */
uint8_t *cov_linetable311_encode(const struct cov_loc *locs, size_t n,
				 int firstline, size_t *len)
{
	struct buf b = { 0 };
	int cur = firstline;

	for (size_t u = 0; u < n;) {
		const struct cov_loc *l = &locs[u];
		size_t v = u + 1;

		while (v < n && v - u < 8 && same(&locs[v], l))
			v++;
		if (l->line < 0) {
			put(&b, (uint8_t)(0x80 | 15 << 3 | (v - u - 1)));
		} else if (l->col < 0 && l->endcol < 0 && l->endline == l->line) {
			put(&b, (uint8_t)(0x80 | 13 << 3 | (v - u - 1)));
			put_svarint(&b, l->line - cur);
			cur = l->line;
		} else {
			put(&b, (uint8_t)(0x80 | 14 << 3 | (v - u - 1)));
			put_svarint(&b, l->line - cur);
			put_varint(&b, (unsigned)(l->endline >= l->line ? l->endline - l->line : 0));
			put_varint(&b, (unsigned)(l->col + 1));
			put_varint(&b, (unsigned)(l->endcol + 1));
			cur = l->line;
		}
		u = v;
	}
	return done(&b, len);
}

/* ---- 3.11 exception table (Objects/exception_handling_notes.txt) ---------- */

static unsigned xvarint(const uint8_t *tab, size_t len, size_t *i)
{
	unsigned v = tab[*i] & 63;

	while (tab[(*i)++] & 64 && *i < len)
		v = (v << 6) | (tab[*i] & 63);
	return v;
}

int cov_xtable_decode(const uint8_t *tab, size_t len, struct cov_xentry *e, size_t max)
{
	size_t i = 0, k = 0;

	while (i < len) {
		if (k == max || !(tab[i] & 128))
			return -1;
		e[k].start = xvarint(tab, len, &i);
		e[k].end = e[k].start + xvarint(tab, len, &i);
		e[k].target = xvarint(tab, len, &i);
		e[k].depth_lasti = xvarint(tab, len, &i);
		k++;
	}
	return (int)k;
}

static void put_xvarint(struct buf *b, unsigned v, uint8_t msb)
{
	int shift = 24;

	for (; shift > 0 && v < 1u << shift; shift -= 6)
		;
	for (; shift > 0; shift -= 6) {
		put(b, (uint8_t)(((v >> shift) & 63) | 64 | msb));
		msb = 0;
	}
	put(b, (uint8_t)((v & 63) | msb));
}

uint8_t *cov_xtable_encode(const struct cov_xentry *e, size_t n, const uint32_t *map,
			   size_t *len)
{
	struct buf b = { 0 };

	for (size_t k = 0; k < n; k++) {
		uint32_t s = map[e[k].start];

		put_xvarint(&b, s, 128);
		put_xvarint(&b, map[e[k].end] - s, 0);
		put_xvarint(&b, map[e[k].target], 0);
		put_xvarint(&b, e[k].depth_lasti, 0);
	}
	return done(&b, len);
}
