/* trace.h - the trace-function collector of CPython 3.9-3.11
 * (payload/trace.c).  Call with the GIL held. */
#ifndef COVINJECT_TRACE_H
#define COVINJECT_TRACE_H

#include <stddef.h>
#include "collect.h"

/* main_interp 0: only sub-interpreters' threads get the tracer. */
int cov_trace_start(struct pyapi *py, int main_interp, struct cov_collect_info *info,
		    char *err, size_t len);
/* From now on, only sub-interpreters' threads keep it. */
void cov_trace_release_main(void);
void cov_trace_sweep(struct cov_sweep *out);
void cov_trace_new_thread(void);
void cov_trace_acquired(void);
void cov_trace_stop(void);

#endif
