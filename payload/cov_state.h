/*
 * cov_state.h - the payload's status block, exported as the symbol
 * "cov_state" and read from outside by `covinject status/dump/stop` with
 * process_vm_readv: no cooperation of the target is needed to read it, and
 * the target is never stopped for it.
 *
 * The payload writes under a sequence counter (odd while writing); a reader
 * retries until it sees the same even value before and after its copy.
 * Who writes what, and under which lock: payload/payload.c, "The rules".
 */
#ifndef COVINJECT_COV_STATE_H
#define COVINJECT_COV_STATE_H

#include <stdint.h>
#include <string.h>

#define COV_STATE_MAGIC	0x31746e6a69766f63ULL	/* "covinjt1" */
#define COV_STATE_ABI	9
#define COV_PATH_MAX	4096
#define COV_ERR_MAX	512

/* Requests, one byte each, on the wake pipe (signals and the CLI). */
#define COV_REQ_DUMP	'D'
#define COV_REQ_RESET	'R'	/* snapshot, then start afresh in a new file */
#define COV_REQ_STOP	'S'

/* Threads in one condition where data is not collected (<= 3.11). */
#define COV_LOST_TIDS	8
struct cov_lost {
	uint32_t n;			/* threads in this condition */
	uint32_t ntids;			/* how many of tids are filled */
	int64_t since_ns;		/* CLOCK_REALTIME: the earliest of them */
	int32_t tids[COV_LOST_TIDS];	/* kernel thread ids, 0 if unknown */
};

/* cov_state.monitoring_lost (3.12+): what the program did to our tool. */
#define COV_MON_TOOL	1	/* freed our tool id (or another tool took it) */
#define COV_MON_EVENTS	2	/* changed our events */

/* start --collector KIND (config collector=): 3.9-3.11 choose by it; the
 * others have one collector each (3.12+: sys.monitoring; 2.7, 3.6-3.8:
 * the trace function). */
enum cov_collector {
	COV_COLLECTOR_AUTO = 0,	/* probes where they are safe, else trace */
	COV_COLLECTOR_TRACE,
	COV_COLLECTOR_PROBE,	/* probes, or start fails */
};
static const char *const cov_collector_names[] = { "auto", "trace", "probe" };

/* The collector a name (the option's, the config key's) asks for; -1. */
static inline int cov_collector_of(const char *name)
{
	for (int i = 0; i <= COV_COLLECTOR_PROBE; i++)
		if (!strcmp(name, cov_collector_names[i]))
			return i;
	return -1;
}
#define COV_WHY_MAX	256

/* cov_state.probe: the probe collector of 3.9-3.11 (payload/probes.c). */
struct cov_probe_info {
	uint32_t codes;		/* variants made */
	uint32_t functions;	/* functions pointed at one at start */
	uint32_t failed;	/* code objects that could not be instrumented */
	uint32_t watched;	/* frames running at start, still running */
	uint32_t unwatched;	/* generators at start not watched (no memory) */
	uint32_t watching;	/* the trace function runs for them */
	uint32_t unobserved;	/* of them, no longer observed: the watch
				 * window ended before they did */
	uint32_t passing;	/* moving functions onto variants, after start */
	int64_t unobserved_ns;	/* CLOCK_REALTIME: since when, or 0 */
};

enum cov_phase {
	COV_IDLE = 0,		/* loaded, never started */
	COV_STARTING,		/* cov_start returned; thread setting up */
	COV_COLLECTING,
	COV_STOPPING,
	COV_STOPPED,		/* collector removed, thread gone */
	COV_FAILED,		/* start failed; see error; nothing installed */
};

/* cov_state.step: where the payload thread is while the phase is
 * COV_STARTING, so that a start that hangs says where (cli_step_name). */
enum cov_step {
	COV_STEP_NONE = 0,
	COV_STEP_SPAWNED,	/* cov_start made the thread; it has not run yet */
	COV_STEP_DIR,		/* waiting for the output directory from the CLI */
	COV_STEP_SQLITE,	/* loading libsqlite3 */
	COV_STEP_INTERP,	/* waiting for the interpreter to be initialised */
	COV_STEP_GIL,		/* waiting for the GIL */
	COV_STEP_INSTALL,	/* installing the collector, GIL held */
	COV_STEP_SIGNALS,	/* installing the signal handlers */
};

struct cov_state {
	uint64_t magic;
	uint32_t abi;
	uint32_t seq;			/* odd while the payload writes */
	uint32_t phase;			/* enum cov_phase */
	uint32_t starts;		/* how many cov_start calls took effect */
	uint32_t start_calls;		/* how many cov_start calls were made */
	int32_t start_error;		/* errno of the last call, 0 if it took */
	int32_t dump_sig, stop_sig;
	int32_t py_hex;			/* PY_VERSION_HEX of the target */
	int32_t tool_id;		/* sys.monitoring tool id, or -1 */
	uint32_t dumps;			/* snapshots written */
	uint32_t dump_errors;		/* snapshots that failed */
	uint32_t dump_requests;		/* dump signals seen */
	uint32_t files, lines;		/* measured so far, live (not under seq) */
	uint32_t threads;		/* threads given the collector at start */
	uint32_t skipped_threads;	/* already traced by another tool */
	int32_t pid;			/* the process this block describes */
	int32_t wake_fd;		/* write a request byte here: D, R or S */
	int32_t dir_sock;		/* send the output directory's fd here, or -1 */
	uint32_t interval_ms;		/* periodic snapshots, 0 = off */
	uint32_t resets;		/* dump --reset requests done */
	uint32_t chain;			/* our handlers call the previous ones */
	uint32_t handlers_lost;		/* the program replaced a handler of ours */
	uint32_t forked;		/* 1 in a child forked while collecting */
	uint32_t no_interpreter;	/* start failed: libpython not initialised */
	uint32_t interpreters;		/* in the process, the main one too */
	uint32_t interps_measured;	/* of them collecting */
	uint32_t interps_isolated;	/* of them with their own allocator
					 * and GIL: never measured */
	uint32_t unhooked;		/* 1 in a child forked without Python's
					 * after-fork hooks: it inherited the
					 * collector, not its thread or pipe */
	uint32_t gil_at_requests;	/* uWSGI without threads: the GIL only
					 * while a request runs Python */
	uint32_t final_written;		/* stopping: the final snapshot is
					 * written, the collector not yet removed */
	int64_t last_dump_ns;		/* CLOCK_REALTIME of the last snapshot */
	uint32_t step;			/* enum cov_step, while starting */
	int64_t step_ns;		/* CLOCK_REALTIME: since when */
	/* Where data is not collected, as the last sweep (every second, and
	 * before each snapshot) found it. */
	uint32_t threads_now;		/* <= 3.11: thread states */
	uint32_t threads_ours;		/* of them with covinject's tracer */
	struct cov_lost removed;	/* the program removed it (settrace(None)) */
	struct cov_lost replaced;	/* another trace function replaced it */
	struct cov_lost foreign;	/* another tool's since covinject met them */
	int64_t hook_lost_ns;		/* threading.settrace replaced since, or 0 */
	int64_t monitoring_lost_ns;	/* 3.12+: since, or 0 */
	uint32_t monitoring_lost;	/* COV_MON_* */
	uint32_t sweeps;		/* sweeps done: the fields above are set */
	uint32_t probes;		/* 1: the probe collector runs (3.9-3.11) */
	uint32_t collector_asked;	/* enum cov_collector */
	char trace_why[COV_WHY_MAX];	/* 3.9-3.11, auto chose the trace
					 * function: why, "" otherwise */
	struct cov_probe_info probe;	/* what it did (probes.c) */
	char data_file[COV_PATH_MAX];	/* where the next snapshot goes */
	char last_file[COV_PATH_MAX];	/* where the last snapshot went */
	char error[COV_ERR_MAX];	/* last failure, "" if none */
};

#endif
