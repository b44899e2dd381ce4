/* variant.h - instrumented copies of code objects (payload/variant.c) for
 * the probe collector of 3.9-3.11.  GIL held. */
#ifndef COVINJECT_VARIANT_H
#define COVINJECT_VARIANT_H

#include <stdint.h>
#include "bytecode.h"
#include "pyapi.h"

/* The variant of a code object nested in the one being made (a new
 * reference: the variant, or the code itself). */
typedef PyObject *cov_nested_fn(PyObject *code, int depth);

/* The opcode table of this interpreter (*t), hit the probe function every
 * probe calls; 0 or -1. */
int cov_variant_init(struct pyapi *py, PyObject *hit, const struct cov_optab **t);
/* code's variant (a new reference) with nested code through fn, the byte
 * offsets of its probes and their lines (*probes and *lines malloc'd,
 * *nprobes of each); NULL (no exception set) if it cannot be made. */
PyObject *cov_variant_make(PyObject *code, int depth, cov_nested_fn *fn,
			   uint32_t **probes, uint32_t **lines, uint32_t *nprobes);
/* int(o.name), or -1. */
long cov_int_attr(PyObject *o, const char *name);

#endif
