/*
 * bytecode.h - instrumented copies of CPython 3.9-3.11 bytecode: a probe
 * before every line start (payload/bytecode.c).  Pure: no Python object is
 * touched here, so the unit tests and the collector (payload/probes.c) see
 * the same code.  All offsets are in code units (two bytes).
 */
#ifndef COVINJECT_BYTECODE_H
#define COVINJECT_BYTECODE_H

#include <stddef.h>
#include <stdint.h>

/* Opcode flags, from the interpreter's own opcode module. */
#define BC_HASARG	1	/* >= HAVE_ARGUMENT */
#define BC_JREL		2	/* in hasjrel */
#define BC_JABS		4	/* in hasjabs */
#define BC_BACK		8	/* 3.11: a relative jump backwards */
#define BC_HANDLER	16	/* 3.9, 3.10: its target is an exception handler */

struct cov_optab {
	int minor;		/* 9, 10 or 11 */
	uint8_t flags[256];
	uint8_t caches[256];	/* 3.11 inline cache units after the opcode */
	/* opcode numbers; call is CALL_FUNCTION (3.9, 3.10) or CALL (3.11) */
	uint8_t ext, nop, jump_fwd, load_const, call, pop_top;
	uint8_t push_null, precall, resume;	/* 3.11 */
};

/* Where one code unit comes from in the source: line -1 is none, and so
 * are columns -1 (3.9 and 3.10 keep lines only). */
struct cov_loc {
	int line, endline, col, endcol;
};

/* 3.11 co_exceptiontable entry: [start, end) handled at target. */
struct cov_xentry {
	uint32_t start, end, target, depth_lasti;
};

struct cov_rewrite {
	/* in */
	const uint8_t *code;		/* co_code */
	size_t n;			/* units */
	const struct cov_loc *locs;	/* n of them */
	uint32_t first_const;		/* co_consts index of the first probe's
					 * argument; the others follow, one per
					 * probe, then the probe function */
	/* out (malloc'd; cov_rewrite_free) */
	uint8_t *out;
	size_t nout;
	struct cov_loc *out_locs;	/* nout */
	uint32_t *map;			/* n + 1: old unit -> new unit (a probed
					 * instruction maps to its probe) */
	uint32_t *probes;		/* nprobes: the probe NOP's unit */
	uint32_t *probe_lines;
	size_t nprobes;
	int stack_growth;		/* add to co_stacksize */
	uint32_t hit_const;		/* first_const + nprobes */
};

/* The instrumented copy; 0, or -1 (no memory, or code it does not know:
 * nothing is allocated then). */
int cov_rewrite(const struct cov_optab *t, struct cov_rewrite *r);
void cov_rewrite_free(struct cov_rewrite *r);

/* Line tables to and from one cov_loc per unit.  Decoders return 0 or -1
 * (malformed); encoders a malloc'd table (*len bytes) or NULL. */
int cov_lnotab_decode(const uint8_t *tab, size_t len, int firstline,
		      struct cov_loc *locs, size_t n);			/* 3.9 */
uint8_t *cov_lnotab_encode(const struct cov_loc *locs, size_t n, int firstline,
			   size_t *len);
int cov_linetable310_decode(const uint8_t *tab, size_t len, int firstline,
			    struct cov_loc *locs, size_t n);
uint8_t *cov_linetable310_encode(const struct cov_loc *locs, size_t n,
				 int firstline, size_t *len);
int cov_linetable311_decode(const uint8_t *tab, size_t len, int firstline,
			    struct cov_loc *locs, size_t n);
uint8_t *cov_linetable311_encode(const struct cov_loc *locs, size_t n,
				 int firstline, size_t *len);

/* 3.11 co_exceptiontable: decode into at most max entries (the count, or
 * -1), and encode entries remapped through map (NULL on no memory). */
int cov_xtable_decode(const uint8_t *tab, size_t len, struct cov_xentry *e,
		      size_t max);
uint8_t *cov_xtable_encode(const struct cov_xentry *e, size_t n,
			   const uint32_t *map, size_t *len);

#endif
