/* probes.h - the probe collector of CPython 3.9-3.11 (payload/probes.c).
 * Call with the GIL held. */
#ifndef COVINJECT_PROBES_H
#define COVINJECT_PROBES_H

#include <stddef.h>
#include <stdint.h>
#include "collect.h"
#include "cov_state.h"

/* o->keep_gil: never give the GIL up in between (uWSGI without threads);
 * o->watch_ms: how long frames running at start are watched, 0: while
 * they run. */
int cov_probes_start(struct pyapi *py, const struct cov_collect_opts *o,
		     struct cov_collect_info *info, char *err, size_t len);
/* --collector auto: why probes are not safe in this process (why filled),
 * or NULL. */
const char *cov_probes_unsafe(struct pyapi *py, char *why, size_t len);
/* The pass after start, a slice at a time: 1 while there is more. */
int cov_probes_pass(void);
void cov_probes_sweep(struct cov_sweep *out);
void cov_probes_info(struct cov_probe_info *out);
/* Are the probes collecting?  0 before start, after stop, and once
 * --collector auto gave way to the trace function (numba imported): then
 * cov_probes_switched says why. */
int cov_probes_active(void);
const char *cov_probes_switched(void);
/* Every probe on again (reset, a forked child). */
void cov_probes_rearm(void);
void cov_probes_stop(void);
/* Is code one of our variants?  (trace.c: their lines are the probes'.) */
int cov_probes_variant(PyObject *code);

#endif
