/* arcs.h - start --branch: arcs from sys.monitoring events and bytecode
 * (payload/arcs.c), CPython 3.12+.  Every function runs with the GIL held. */
#ifndef COVINJECT_ARCS_H
#define COVINJECT_ARCS_H

#include <stddef.h>
#include "pyapi.h"
#include "store.h"

struct cov_code;

/* Read the interpreter's opcode tables; 0 or -1 with a message in err. */
int cov_arcs_init(struct pyapi *py, char *err, size_t len);

/* The table of a code object of f: found, or built at its first event. */
struct cov_code *cov_arcs_code(PyObject *code, struct cov_file *f);

/* A BRANCH event (3.12, 3.13); 1 once both directions ran (the event may
 * be disabled). */
int cov_arcs_branch(struct cov_code *c, long src, long dst);

/* BRANCH_LEFT (d 0, fall-through) or BRANCH_RIGHT (d 1, jump), 3.14+. */
void cov_arcs_taken(struct cov_code *c, long src, int d);

/* A JUMP event. */
void cov_arcs_jump(struct cov_code *c, long src);

/* Add the arcs taken to the snapshot's files (store.c numbered them). */
int cov_arcs_snapshot(struct cov_snap *s);

/* Forget what ran (reset, forked child); forget everything (stop). */
void cov_arcs_zero(void);
void cov_arcs_clear(void);

#endif
