/* collect.h - the collectors (payload/collect.c).  Call with the GIL held. */
#ifndef COVINJECT_COLLECT_H
#define COVINJECT_COLLECT_H

#include <stddef.h>
#include <stdint.h>
#include "pyapi.h"
#include "store.h"

struct cov_collect_info {
	int tool_id;		/* sys.monitoring tool id, or -1 */
	uint32_t threads;	/* thread states given the tracer */
	uint32_t skipped;	/* thread states another tracer holds */
};

/* branch: record arcs too (start --branch, 3.12+ only). */
int cov_collect_start(struct pyapi *py, int branch, struct cov_collect_info *info,
		      char *err, size_t len);
/* Copy the data (store.c, and arcs.c with branch) for a snapshot. */
int cov_collect_snapshot(struct cov_snap *s);
/* <= 3.11: give the tracer to threads started since (from C, say). */
void cov_collect_sweep(void);
/* The current thread's state was just made by PyGILState_Ensure (got.c):
 * give it the tracer (3.9-3.11) unless it has one.  GIL held. */
void cov_collect_new_thread(void);
void cov_collect_stop(void);
/* Zero the data and re-arm disabled events (reset, forked child). */
void cov_collect_rearm(void);
void cov_collect_release(void);

#endif
