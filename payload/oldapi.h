/* oldapi.h - stand-ins for the C-API functions CPython 3.6-3.8 lack
 * (payload/oldapi.c). */
#ifndef COVINJECT_OLDAPI_H
#define COVINJECT_OLDAPI_H

#include "pyapi.h"

/* At load: every function api lacks that a stand-in replaces; 0, or -1
 * if the frame layout is not recognised. */
int cov_oldapi_fill(struct pyapi *api);
/* GIL held, before the first _PyEval_SetTrace stand-in call: the thread
 * state's trace fields; unique is an object found nowhere else.  0 (also
 * where the interpreter has the real functions), or -1. */
int cov_oldapi_probe(PyObject *unique);

#endif
