/* oldapi.h - stand-ins for the C-API functions CPython 3.6-3.8 lack
 * (payload/oldapi.c). */
#ifndef COVINJECT_OLDAPI_H
#define COVINJECT_OLDAPI_H

#include <stdint.h>
#include "pyapi.h"

/* At load: every function api lacks that a stand-in replaces; 0, or -1
 * if the frame layout is not recognised. */
int cov_oldapi_fill(struct pyapi *api);
/* After cov_oldapi_fill: the name of a function api needs and has neither
 * found nor been given a stand-in for, or NULL. */
const char *cov_oldapi_missing(const struct pyapi *api);
/* GIL held, before the first _PyEval_SetTrace stand-in call: the thread
 * state's trace fields; unique is an object found nowhere else.  0 (also
 * where the interpreter has the real functions), or -1. */
int cov_oldapi_probe(PyObject *unique);
/* In cov_start, on the borrowed thread, no GIL: 2.7's or 3.6's GIL, made
 * if the process has none yet and this thread may make it (running_ip:
 * where it was caught running, 0 if parked in a system call).  0 (made, or not
 * needed), or -1 with why it could not in why. */
int cov_oldapi_make_gil(uintptr_t running_ip, char *why, size_t len);

#endif
