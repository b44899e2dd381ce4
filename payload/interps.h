/* interps.h - the sub-interpreters of the process (payload/interps.c).
 * Call with the GIL held. */
#ifndef COVINJECT_INTERPS_H
#define COVINJECT_INTERPS_H

#include "pyapi.h"

/* 1 if in shares the main interpreter's allocator and GIL: then the
 * collectors can measure it. */
int cov_interp_shared(struct pyapi *py, PyInterpreterState *in);

/* Run fn(arg) in interpreter in, on a thread state made for the visit.
 * 0, or -1 if none could be made.  On 3.13+ the GIL is released and
 * taken again on the way in: other threads may have run (cov_exiting). */
int cov_interp_visit(struct pyapi *py, PyInterpreterState *in, void (*fn)(void *),
		     void *arg);

#endif
