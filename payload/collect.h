/* collect.h - the collectors (payload/collect.c, payload/trace.c).  Call
 * with the GIL held. */
#ifndef COVINJECT_COLLECT_H
#define COVINJECT_COLLECT_H

#include <stddef.h>
#include <stdint.h>
#include "cov_state.h"
#include "pyapi.h"
#include "store.h"

struct cov_collect_info {
	int tool_id;		/* sys.monitoring tool id, or -1 */
	uint32_t threads;	/* thread states given the tracer */
	uint32_t skipped;	/* thread states another tracer holds */
	int probes;		/* 1: the probe collector runs */
	char trace_why[COV_WHY_MAX];	/* auto chose the trace function: why */
};

/* Where the collector is, and is not, as a sweep found it. */
struct cov_sweep {
	uint32_t live;			/* <= 3.11: thread states (not ours) */
	uint32_t ours;			/* of them collecting */
	uint32_t given;			/* given the tracer by this sweep */
	struct cov_lost removed;	/* the program removed the trace function */
	struct cov_lost replaced;	/* another trace function replaced ours */
	struct cov_lost foreign;	/* another one's since covinject met them */
	int64_t hook_lost_ns;		/* threading.settrace not ours since, or 0 */
	int64_t monitoring_lost_ns;	/* 3.12+: tool id or events changed, or 0 */
	uint32_t monitoring_lost;	/* COV_MON_* */
};

struct cov_collect_opts {
	int branch;	/* record arcs too (start --branch, 3.12+ only) */
	int collector;	/* enum cov_collector (3.9-3.11) */
	int keep_gil;	/* never give the GIL up while starting */
	unsigned watch_ms;	/* probes: the watch window, 0: unlimited */
};

int cov_collect_start(struct pyapi *py, const struct cov_collect_opts *o,
		      struct cov_collect_info *info, char *err, size_t len);
/* After start returned (the payload thread, GIL held): a slice of
 * --collector probe's pass over every function, giving the GIL up as it
 * goes; 1 while there is more. */
int cov_collect_pass(void);
/* 3.9-3.11: do probes collect?  If not, why was put in why when
 * --collector auto gave way to the trace function (probes.c, numba). */
int cov_collect_probing(char *why, size_t len);
/* Copy the data (store.c, and arcs.c with branch) for a snapshot. */
int cov_collect_snapshot(struct cov_snap *s);
/* <= 3.11: give the tracer to threads started since (from C, say); all
 * versions: find where collection stopped without us. */
void cov_collect_sweep(struct cov_sweep *out);
/* The current thread's state was just made by PyGILState_Ensure (got.c):
 * give it the tracer (3.9-3.11) unless it has one.  GIL held. */
void cov_collect_new_thread(void);
/* The current thread state was just made current by PyEval_AcquireThread
 * (got.c): one never met gets the tracer (3.9-3.11).  GIL held. */
void cov_collect_acquired(void);
void cov_collect_stop(void);
/* Of total interpreters: how many are measured, and how many never can be
 * (their own allocator and GIL: interps.c). */
void cov_collect_interps(uint32_t total, uint32_t *measured, uint32_t *isolated);
/* Zero the data and re-arm disabled events (reset, forked child). */
void cov_collect_rearm(void);
void cov_collect_release(void);
/* The hot path's file of a code object (store.c), or NULL. */
struct cov_file *cov_collect_file(PyObject *code);

#endif
