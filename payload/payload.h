/*
 * payload.h - what the files of payload/ share: the configuration, the
 * interpreter's API table, and the entry points of payload.c that the
 * signal handlers and the interpreter hooks call.
 */
#ifndef COVINJECT_PAYLOAD_H
#define COVINJECT_PAYLOAD_H

#include "config.h"
#include "cov_state.h"
#include "pyapi.h"

extern struct cov_config cov_cfg;
extern struct pyapi cov_py;
extern struct cov_state cov_state;

/* 1 in the payload's own thread (payload.c sets it), 0 in the host's. */
extern __thread int cov_collector_thread;

void cov_state_begin(void);
void cov_state_end(void);

/* signals.c: the dump and stop handlers. */
int cov_signals_install(int wake_fd);
void cov_signals_set_wake(int wake_fd);
void cov_signals_restore(void);
int cov_signals_lost(void);

/* hooks.c: atexit and os.register_at_fork; call with the GIL held. */
int cov_hooks_install(char *err, size_t len);
void cov_hooks_remove(void);
/* GIL held, every sweep: what could not be hooked at install, now. */
void cov_hooks_sweep(void);
/* No os.register_at_fork (3.6): a child of os.fork is hooked through the
 * trace function (cov_adopt_pending, cov_fork_adopt; payload.c). */
int cov_hooks_fork_by_trace(void);
extern int cov_adopt_pending;
void cov_fork_adopt(void);

/* got.c: os._exit writes the final snapshot too; threads C code brings
 * into Python, or into a sub-interpreter, get the tracer at once (trace:
 * 3.9-3.11).  GIL held. */
void cov_got_install(int trace);
void cov_got_remove(void);

/* payload.c: 1 once the interpreter is finalizing (cov_on_exit ran):
 * from then on nothing of ours touches Python. */
int cov_exiting(void);

/* payload.c: called by hooks.c with the GIL held. */
void cov_on_exit(void);
void cov_on_fork_child(void);
/* Wake the collector's thread for a sweep now (it publishes the status
 * block), not at its next second. */
void cov_wake_sweep(void);

#endif
