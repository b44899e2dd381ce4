/*
 * payload.c - the entry point the injector calls, the payload's own thread,
 * snapshots, and the status block.
 *
 * cov_start runs in a borrowed thread of the host and must give it back
 * fast: it copies the configuration and starts our thread, nothing else.
 * Our thread (all signals blocked) receives the output directory, waits
 * for the interpreter, takes the GIL like any other thread, installs the
 * collector, the interpreter hooks and the signal handlers, then sleeps on
 * a pipe.  Requests arrive on that pipe as one byte each (cov_state.h):
 * from the signal handlers, or written by the covinject command straight
 * into /proc/PID/fd/<wake_fd>, which needs no signal at all.
 *
 * The output directory arrives as an open fd (SCM_RIGHTS) on a socket of
 * ours whose other end, cov_state.dir_sock, the CLI takes with
 * pidfd_getfd: it opened the directory in its own mount namespace, so -o
 * means what the person typing it sees, even when this process has
 * another root (a container) and could not name it.  dump -o and stop -o
 * send a new one the same way, before their request byte.
 *
 * Exported: cov_start and cov_state; everything else is hidden
 * (-fvisibility=hidden), so we add nothing to the host's symbol namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "collect.h"
#include "modules.h"
#include "oldapi.h"
#include "payload.h"
#include "probes.h"
#include "store.h"
#include "versions.h"
#include "writer.h"

#define EXPORT __attribute__((visibility("default")))
#define SWEEP_MS 1000

EXPORT int cov_start(const char *config, uint64_t running_ip);

EXPORT struct cov_state cov_state = {
	.magic = COV_STATE_MAGIC,
	.abi = COV_STATE_ABI,
	.tool_id = -1,
	.wake_fd = -1,
};

struct cov_config cov_cfg;
struct pyapi cov_py;
__thread int cov_collector_thread;

static char cfg_text[COV_CONFIG_MAX];	/* copied by cov_start */
static int api_loaded;			/* cov_py: once, by cov_start or setup */
static int probing;			/* setup chose the probe collector */
static int gil_missing;			/* 2.7, 3.6 without a GIL: see setup */
static int fork_held_gil;		/* the forking thread held the GIL */
int cov_adopt_pending;			/* see after_fork_child */
static char gil_why[96];		/* why the borrowed thread did not make it */
static int wake[2] = { -1, -1 };	/* requests -> our thread */
static char stdlib_dir[PATH_MAX];
static const char *sources[2 * COV_MAX_SOURCES];	/* --source, resolved */
static char *resolved[COV_MAX_SOURCES];		/* what packages resolved to */
static struct cov_scope scope = { stdlib_dir, sources };
static struct cov_filter filter = { cov_cfg.includes, cov_cfg.omits };
static char final_name[300], tmp_name[128];	/* in the directory */
static int dir_sock[2] = { -1, -1 };	/* [0] ours; the CLI sends to [1] */
static struct cov_out outdir = { -1, NULL, NULL };	/* payload thread; fork child */
static char out_shown[COV_PATH_MAX - 320];	/* the CLI's name for it */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t gil_gate = PTHREAD_MUTEX_INITIALIZER;	/* see gil_take */
static int fork_has_gate;		/* before_fork took gil_gate */
static int exiting;			/* the interpreter is finalizing */
static uint32_t dumped_files, dumped_lines;	/* what the last snapshot held */

/*
 * The rules.  Threads that touch this file's data: the payload thread
 * ("ours"); host threads holding the GIL in the interpreter's hooks
 * (cov_on_exit, cov_on_fork_child) and on the hot path (store.c, through
 * the collectors); the borrowed thread in cov_start; the signal handlers,
 * which only write a byte to the wake pipe (signals.c).
 *
 * - cov_state: every write is between cov_state_begin and cov_state_end,
 *   which hold state_lock, so writers never interleave and the sequence
 *   counter is odd exactly while one writes.  Nothing between them blocks
 *   or calls Python: state_lock may be taken with the GIL held, never the
 *   GIL with state_lock held.  Two exceptions, outside the counter:
 *   files and lines, stored by the hot path (GIL held) as they change, one
 *   relaxed atomic word each (store.c, cov_store_publish); and seq itself.
 *   The sweep's findings are published under the GIL, so cov_on_exit
 *   (GIL) either comes before (and the payload thread sees `exiting`) or
 *   after them.
 * - exiting: 0 by cov_start before our thread exists, 1 by cov_on_exit
 *   under the GIL; atomic.  Ours reads it without the GIL as a hint and
 *   again under the GIL as the decision: once it is 1, ours never touches
 *   Python again (the interpreter is finalizing).
 * - final_name, tmp_name, outdir, out_shown, dumped_files, dumped_lines:
 *   under write_lock (ours at a snapshot, a reset, a new directory;
 *   cov_on_exit's final snapshot), or in cov_start / a forked child,
 *   where no other thread of ours runs.  Lock order: write_lock, then
 *   state_lock, then store.c's store_lock; a fork takes all three
 *   (before_fork), so a child never inherits one locked.
 * - cov_cfg, wake, dir_sock, scope: set by cov_start and the forked
 *   child before our thread starts, then read only.
 * - gil_gate: held by ours from before it asks for the GIL until after it
 *   gave it back (gil_take, gil_give), and by a forking thread across the
 *   fork (before_fork): first in the lock order, before the GIL.
 * - The store, the collectors and the Python objects they hold: the GIL.
 *   One exception: with gil_at_requests (uWSGI without threads) ours
 *   copies a plain snapshot without the GIL, under store_lock, which
 *   everything in store.c that allocates or frees holds too.
 */

/* ---- our thread and the GIL -------------------------------------------- */

/*
 * Every time ours takes the GIL, through here.  A fork that runs none of
 * Python's after-fork hooks (uWSGI respawning a worker, C code calling
 * fork()) copies the GIL as it is: had ours held it at that instant, the
 * child would wait forever for a holder that does not exist there; had it
 * been waiting for it, the child's copy of the GIL's condition variable
 * would count a waiter that never leaves, and glibc's would hang the
 * child's next hand-over of the GIL between two threads.  So a forking
 * thread takes gil_gate first (before_fork): it waits for ours to be done
 * with the GIL, and ours waits for the fork to be over.
 */
static int gil_take(void)
{
	pthread_mutex_lock(&gil_gate);
	return cov_py.GILState_Ensure();
}

static void gil_give(int gil)
{
	cov_py.GILState_Release(gil);
	pthread_mutex_unlock(&gil_gate);
}

/*
 * In before_fork.  A forking thread that holds the GIL (os.fork, whose
 * after-fork hooks reinitialise the GIL in the child anyway, or C code
 * under ctypes.PyDLL) cannot wait: ours may be waiting for that very GIL.
 * One that does not waits at most 200 ms (ours holds the GIL for
 * milliseconds, unless a thread of the program keeps it from us).
 */
static int gate_for_fork(int held)
{
	struct timespec ts;

	if (!cov_py.GILState_Check || held)
		return pthread_mutex_trylock(&gil_gate) == 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_mutex_timedlock(&gil_gate, &ts) == 0;
}

/* ---- the status block (a sequence counter guards readers) --------------- */

void cov_state_begin(void)
{
	pthread_mutex_lock(&state_lock);
	__atomic_add_fetch(&cov_state.seq, 1, __ATOMIC_ACQ_REL);
}

void cov_state_end(void)
{
	__atomic_add_fetch(&cov_state.seq, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&state_lock);
}

static int is_exiting(void)
{
	return __atomic_load_n(&exiting, __ATOMIC_SEQ_CST);
}

int cov_exiting(void)
{
	return is_exiting();
}

static void set_phase(enum cov_phase p)
{
	cov_state_begin();
	cov_state.phase = p;
	cov_state_end();
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Where a start is: what the CLI names if it hangs there. */
static void set_step(enum cov_step step)
{
	int64_t now = realtime_ns();

	cov_state_begin();
	cov_state.step = step;
	cov_state.step_ns = now;
	cov_state_end();
}

static void set_error(const char *fmt, ...)
{
	va_list ap;

	cov_state_begin();
	va_start(ap, fmt);
	vsnprintf(cov_state.error, sizeof(cov_state.error), fmt, ap);
	va_end(ap);
	cov_state_end();
}

/* ---- snapshots --------------------------------------------------------- */

static void random_word(char *out, size_t n)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[16];

	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ getpid() ^ i * 37);
	}
	for (size_t i = 0; i < n && i < sizeof(rnd); i++)
		out[i] = alnum[rnd[i] % 36];
	out[n] = 0;
}

/* The data file as the CLI names it, for status and the messages. */
static void show_data_file(void)
{
	cov_state_begin();
	snprintf(cov_state.data_file, sizeof(cov_state.data_file), "%s/%s",
		 out_shown, final_name);
	cov_state_end();
}

/* A new data file name: at start, after a reset, in a forked child. */
static void make_names(void)
{
	char host[256] = "localhost", r1[7], r2[7];

	random_word(r1, 6);
	random_word(r2, 6);
	gethostname(host, sizeof(host) - 1);
	snprintf(final_name, sizeof(final_name), ".coverage.%s.pid%d.X%sx", host,
		 (int)getpid(), r1);
	show_data_file();
	snprintf(tmp_name, sizeof(tmp_name), ".covinject-tmp.pid%d.%s",
		 (int)getpid(), r2);
}

/* Write snap to the current file; record the outcome in the status block.
 * 0, or -1 if it failed. */
static int write_snap(struct cov_snap *snap, uint32_t files, uint32_t lines)
{
	char err[COV_ERR_MAX] = "";
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&write_lock);
	rc = cov_write_snapshot(snap, &outdir, final_name, tmp_name, cov_cfg.argv,
				err, sizeof(err));
	clock_gettime(CLOCK_REALTIME, &ts);
	cov_state_begin();
	if (rc) {
		cov_state.dump_errors++;
		snprintf(cov_state.error, sizeof(cov_state.error), "%s", err);
	} else {
		cov_state.dumps++;
		cov_state.last_dump_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		memcpy(cov_state.last_file, cov_state.data_file, sizeof(cov_state.last_file));
		cov_state.error[0] = 0;
		dumped_files = files;
		dumped_lines = lines;
	}
	cov_state_end();
	pthread_mutex_unlock(&write_lock);
	cov_snap_free(snap);
	return rc;
}

static void sweep_locked(void);

/* uWSGI without threads never lends the GIL while idle: a plain snapshot
 * is copied without it there (store.c, store_lock). */
static int dump_nogil(void)
{
	struct cov_snap snap;
	uint32_t files, lines;

	if (is_exiting())
		return 0;
	if (cov_store_snapshot_nogil(&snap, &files, &lines)) {
		set_error("snapshot: out of memory");
		cov_state_begin();
		cov_state.dump_errors++;
		cov_state_end();
		return -1;
	}
	return write_snap(&snap, files, lines);
}

/* Copy under the GIL (microseconds), write without it.  With reset, the
 * data starts afresh after the copy and goes to a new file.  0, or -1 if
 * the snapshot failed (the data is still all in memory). */
static int dump(int reset)
{
	struct cov_snap snap;
	uint32_t files, lines;
	int gil, rc;

	if (is_exiting())
		return 0;
	if (cov_cfg.gil_at_requests && !reset && !cov_cfg.branch)
		return dump_nogil();
	gil = gil_take();
	if (is_exiting()) {	/* cov_on_exit ran while we waited for the GIL */
		gil_give(gil);
		return 0;
	}
	sweep_locked();		/* dump and stop report what it finds */
	if (is_exiting()) {	/* a visit of the sweep let cov_on_exit run */
		gil_give(gil);
		return 0;
	}
	rc = cov_collect_snapshot(&snap);
	cov_store_counts(&files, &lines);
	if (!rc && reset)
		cov_collect_rearm();
	gil_give(gil);
	if (rc) {
		set_error("snapshot: out of memory");
		cov_state_begin();
		cov_state.dump_errors++;
		cov_state_end();
		return -1;
	}
	rc = write_snap(&snap, files, lines);
	if (reset) {
		pthread_mutex_lock(&write_lock);
		make_names();
		dumped_files = dumped_lines = 0;
		pthread_mutex_unlock(&write_lock);
		cov_state_begin();
		cov_state.resets++;
		cov_state_end();
	}
	return rc;
}

/* ---- the output directory ---------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* A fresh socket for the CLI to hand directories over: at start and in a
 * forked child, so no two processes ever share one.  0 or an errno. */
static int open_dir_sock(void)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
		return errno;
	close_fd(&dir_sock[0]);
	close_fd(&dir_sock[1]);
	dir_sock[0] = sv[0];
	dir_sock[1] = sv[1];
	cov_state_begin();
	cov_state.dir_sock = sv[1];
	cov_state_end();
	return 0;
}

static void close_dir_sock(void)
{
	cov_state_begin();
	cov_state.dir_sock = -1;
	cov_state_end();
	close_fd(&dir_sock[0]);
	close_fd(&dir_sock[1]);
}

/* Switch to directory fd, named shown by the CLI (and by this process too
 * if reachable); the data file keeps its name. */
static void use_dir(int fd, int reachable, const char *shown)
{
	close_fd(&outdir.dirfd);
	snprintf(out_shown, sizeof(out_shown), "%s", shown);
	outdir.dirfd = fd;
	outdir.path = reachable ? out_shown : NULL;
	outdir.shown = out_shown;
	show_data_file();
}

/*
 * One directory the CLI sent: the fd (SCM_RIGHTS) and, as the message, its
 * name as the CLI sees it.  1 taken, 0 none waiting, -1 unusable.
 */
static int take_dir(void)
{
	char name[COV_PATH_MAX], ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { name, sizeof(name) - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;
	struct stat st, here;
	ssize_t n = recvmsg(dir_sock[0], &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int fd = -1;

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	c = CMSG_FIRSTHDR(&m);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (fd < 0 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n == 0 ||
	    fstat(fd, &st) || !S_ISDIR(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	name[n] = 0;
	/* Reachable by the same name here too?  Only old SQLite needs a path. */
	use_dir(fd, stat(name, &here) == 0 && here.st_dev == st.st_dev &&
		here.st_ino == st.st_ino, name);
	return 1;
}

/* Before anything is installed: data files need the process's SQLite. */
static int need_sqlite(void)
{
	char err[COV_ERR_MAX - 200] = "";
	struct sqlite_api sq;

	set_step(COV_STEP_SQLITE);
	if (cov_sqlite_load(&sq, err, sizeof(err)) == 0)
		return 0;
	set_error("%s (covinject writes coverage.py's SQLite data files with the "
		  "process's own libsqlite3: install it in the image, libsqlite3-0 "
		  "on Debian and Ubuntu, sqlite-libs on RHEL and Alpine)", err);
	return -1;
}

/* At start: the directory the CLI sends, or (out_fd=0) the out= path. */
static int open_out(void)
{
	struct pollfd p = { dir_sock[0], POLLIN, 0 };
	int fd;

	if (!cov_cfg.out_fd) {
		fd = open(cov_cfg.out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			set_error("output directory %s: %s", cov_cfg.out_dir, strerror(errno));
			return -1;
		}
		use_dir(fd, 1, cov_cfg.out_dir);
		return 0;
	}
	/* The CLI sends it right after cov_start returns: a wait means it died. */
	set_step(COV_STEP_DIR);
	if (poll(&p, 1, 3000) == 1 && take_dir() == 1)
		return 0;
	set_error("no output directory arrived from covinject (it ended before "
		  "handing it over): run covinject start again");
	return -1;
}

/* A fresh session's counters (at start, in a forked child); inside
 * cov_state_begin/end. */
static void reset_counters(void)
{
	cov_state.dumps = cov_state.dump_errors = cov_state.dump_requests = 0;
	cov_state.resets = 0;
	cov_state.last_dump_ns = 0;
	cov_state.sweeps = 0;
	cov_state.last_file[0] = cov_state.error[0] = 0;
	dumped_files = dumped_lines = 0;
}

/* The payload thread, detached: 0 or pthread_create's error. */
static int spawn(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc;
}

/* ---- the interpreter's hooks (GIL held, in the host's thread) ----------- */

/* atexit: the final snapshot, written right here, then nothing more. */
void cov_on_exit(void)
{
	struct cov_snap snap;
	uint32_t files, lines;

	if (cov_state.phase != COV_COLLECTING || is_exiting())
		return;
	/* our thread must not touch Python from now on */
	__atomic_store_n(&exiting, 1, __ATOMIC_SEQ_CST);
	if (cov_state.unhooked)
		make_names();	/* its own file, never its parent's */
	cov_collect_stop();
	if (cov_collect_snapshot(&snap) == 0) {
		cov_store_counts(&files, &lines);
		write_snap(&snap, files, lines);
	}
	cov_signals_restore();
	set_phase(COV_STOPPED);
	if (write(wake[1], "S", 1) < 0) {
		/* the thread exits on its next wake-up anyway */
	}
}

void cov_wake_sweep(void)
{
	/* not a request: next_request returns 0, and serve sweeps */
	if (wake[1] >= 0 && write(wake[1], "W", 1) < 0) {
		/* a full pipe: a wake-up is on its way already */
	}
}

static void *payload_main(void *arg);

/* How payload_main begins. */
enum { RUN_START, RUN_FORKED, RUN_ADOPT };

/*
 * In a child forked while collecting (os.fork, multiprocessing, a prefork
 * server): the collector and handlers are inherited, our thread is not.
 * Start afresh: own pipe, own file, empty data, a new thread.
 */
void cov_on_fork_child(void)
{
	int p[2];

	if (cov_state.phase != COV_COLLECTING || is_exiting())
		return;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
		wake[0] = p[0];
		wake[1] = p[1];
		cov_signals_set_wake(p[1]);
	}
	if (cov_cfg.out_fd && open_dir_sock())
		close_dir_sock();	/* then dump -o is refused */
	cov_collect_rearm();
	cov_state_begin();
	cov_state.pid = getpid();
	cov_state.wake_fd = wake[1];
	reset_counters();
	cov_state.forked = 1;
	cov_state.unhooked = 0;
	cov_state_end();
	make_names();
	if (spawn(payload_main, (void *)RUN_FORKED))
		set_error("forked child: cannot start the payload thread");
}

/*
 * No fork in the middle of a snapshot: the child would inherit SQLite's
 * internal mutexes locked by our thread, which does not exist in the child,
 * and its first snapshot would wait on them forever.  The forking thread
 * waits for the write in progress (milliseconds); our thread holds no other
 * lock while writing, so this cannot deadlock.
 */
static void before_fork(void)
{
	int held = cov_py.GILState_Check && cov_py.GILState_Check();
	int gate = gate_for_fork(held);

	pthread_mutex_lock(&write_lock);
	pthread_mutex_lock(&state_lock);
	cov_store_lock();
	fork_has_gate = gate;
	fork_held_gil = held;
}

static void after_fork(void)
{
	cov_store_unlock();
	pthread_mutex_unlock(&state_lock);
	pthread_mutex_unlock(&write_lock);
	if (fork_has_gate)
		pthread_mutex_unlock(&gil_gate);
}

/*
 * In every child, however it was forked (os.fork, or a C server's fork()
 * that runs none of Python's hooks, as uWSGI's workers by default): the
 * parent's request pipe and directory socket are shared with the parent,
 * so the child drops its copies at once (close only: async-signal-safe).
 * A signal handler or an exit hook of the child can then never reach the
 * parent's collector.  cov_on_fork_child, when Python's hooks run, gives
 * the child its own; otherwise it stays "unhooked" (status says so).
 *
 * On 3.6 the hook is threading._after_fork (hooks.c), which runs only if
 * the program imported threading.  A child of os.fork (which forks with
 * the GIL held and reinitialises the interpreter before it returns to
 * Python; a C server's fork(), uWSGI's, gives the GIL up first) gets its
 * collector at its first trace event instead: cov_adopt_pending, which
 * the trace function reads (trace.c) and threading._after_fork clears.
 */
static void after_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	if (!fork_has_gate)	/* ours may have held it: it is not here */
		memcpy(&gil_gate, &fresh, sizeof(fresh));
	after_fork();	/* the locks before_fork took, first */
	cov_signals_set_wake(-1);
	close_fd(&wake[0]);
	close_fd(&wake[1]);
	close_fd(&dir_sock[0]);
	close_fd(&dir_sock[1]);
	cov_state_begin();
	cov_state.wake_fd = cov_state.dir_sock = -1;
	cov_state.unhooked = cov_state.phase == COV_COLLECTING;
	cov_state_end();
	cov_adopt_pending = fork_held_gil && cov_state.phase == COV_COLLECTING &&
			    cov_hooks_fork_by_trace();
}

/* From the trace function, GIL held: the os.fork child's own collector. */
void cov_fork_adopt(void)
{
	cov_adopt_pending = 0;
	cov_on_fork_child();
}

/* ---- the payload thread ------------------------------------------------ */

/* --source: the directories given, then the packages named, resolved. */
static int sources_init(char *err, size_t len)
{
	int n = 0, r;

	for (int i = 0; i < COV_MAX_SOURCES; i++) {
		free(resolved[i]);
		resolved[i] = NULL;
	}
	memset(sources, 0, sizeof(sources));
	for (int i = 0; i < cov_cfg.nsources; i++)
		sources[i] = cov_cfg.sources[i];
	r = cov_modules_resolve(&cov_py, cov_cfg.source_pkgs, resolved,
				COV_MAX_SOURCES - 1, &n, err, len);
	for (int i = 0; i < n; i++)
		sources[cov_cfg.nsources + i] = resolved[i];
	return r;
}

static int scope_init(char *err, size_t len)
{
	PyObject *name = cov_py.Unicode_FromString("os"), *os, *file;
	const char *s;
	char *slash;

	stdlib_dir[0] = 0;
	os = name ? cov_py.Import_GetModule(name) : NULL;
	file = os ? cov_py.Object_GetAttrString(os, "__file__") : NULL;
	s = file ? cov_py.Unicode_AsUTF8AndSize(file, NULL) : NULL;
	if (s && realpath(s, stdlib_dir) && (slash = strrchr(stdlib_dir, '/')))
		*slash = 0;
	cov_py.Err_Clear();
	if (file)
		cov_py.DecRef(file);
	if (os)
		cov_py.DecRef(os);
	if (name)
		cov_py.DecRef(name);
	cov_store_init(&scope);
	cov_store_publish(&cov_state.files, &cov_state.lines);
	cov_store_set_filter(&filter);
	return sources_init(err, len);
}

/* The import context, one module per hold of the GIL (modules.c); with
 * gil_at_requests, setup did it in its own hold. */
static void import_lines(void)
{
	int gil;

	if (!cov_cfg.import_lines || cov_cfg.gil_at_requests || is_exiting())
		return;
	gil = gil_take();
	if (!is_exiting())
		cov_modules_import_lines(&cov_py, &exiting, 0);
	gil_give(gil);
}

/* A second for one still starting up: libpython may be loaded by a
 * program that never starts an interpreter in this process (Apache's
 * parent with mod_wsgi), which --tree then skips at once. */
static int wait_interpreter(void)
{
	for (int i = 0; i < 100; i++) {
		if (cov_py.IsInitialized())
			return 0;
		usleep(10000);
	}
	return -1;
}

/* The interpreters of the process (sub-interpreters: mod_wsgi's
 * application groups), and of them measured and isolated; GIL held. */
static void count_interpreters(uint32_t n[3])
{
	n[0] = 0;
	for (PyInterpreterState *i = cov_py.InterpreterState_Head(); i && n[0] < 1u << 20;
	     i = cov_py.InterpreterState_Next(i))
		n[0]++;
	cov_collect_interps(n[0], &n[1], &n[2]);
}

/* Inside cov_state_begin/end: what the probe collector did (3.9-3.11). */
static void publish_probes(void)
{
	if (!probing)
		return;
	if (!cov_collect_probing(cov_state.trace_why, sizeof(cov_state.trace_why))) {
		probing = 0;	/* auto gave way to the trace function */
		cov_state.probes = 0;
		return;
	}
	cov_probes_info(&cov_state.probe);
	cov_state.probes = 1;
}

/* --collector probe: a slice of moving functions onto their variants,
 * after start returned (the trace function collects meanwhile), between
 * requests; with gil_at_requests, setup did it all in its own hold.  1
 * while there is more. */
static int probe_slice(void)
{
	int gil, more = 0;

	if (!probing || cov_cfg.gil_at_requests || is_exiting())
		return 0;
	gil = gil_take();
	if (!is_exiting()) {
		more = cov_collect_pass();
		cov_state_begin();
		publish_probes();
		cov_state_end();
	}
	gil_give(gil);
	return more;
}

/* Inside cov_state_begin/end. */
static void publish_interpreters(const uint32_t n[3])
{
	cov_state.interpreters = n[0];
	cov_state.interps_measured = n[1];
	cov_state.interps_isolated = n[2];
}

/*
 * The table the CLI refused by (versions.h), checked again from the
 * interpreter itself: the CLI judged a file name.  A free-threaded build
 * says so in Py_GetVersion ("3.14.0 free-threading build (main, ...)",
 * Python/getversion.c since 3.13), which needs no object and no GIL.
 */
static int check_version(void)
{
	int major = (cov_py.hex >> 24) & 255, minor = (cov_py.hex >> 16) & 255;
	const char *v = cov_py.GetVersion();
	char range[32];

	if (cov_python_fit(major, minor) != COV_PY_SUPPORTED) {
		set_error("unsupported Python %s (covinject supports %s)", v,
			  cov_python_range(range, sizeof(range)));
		return -1;
	}
	if (strstr(v, "free-threading")) {
		set_error("Python %s is a free-threaded build (covinject supports "
			  "only default builds, with the GIL)", v);
		return -1;
	}
	return 0;
}

static int setup(void)
{
	char err[COV_ERR_MAX] = "";
	struct cov_collect_info info;
	uint32_t interps[3];
	int gil, rc;

	if (!api_loaded && cov_pyapi_load(&cov_py, err, sizeof(err))) {
		set_error("Python C-API: %s", err);
		return -1;
	}
	api_loaded = 1;
	if (check_version())
		return -1;
	cov_state_begin();
	cov_state.py_hex = cov_py.hex;	/* status names it, even on failure */
	cov_state_end();
	set_step(COV_STEP_INTERP);
	if (wait_interpreter()) {
		set_error("no interpreter runs in this process: libpython is loaded but "
			  "not initialised (a program that embeds Python without "
			  "starting it here, such as Apache's parent process): attach "
			  "to the process that runs Python");
		cov_state_begin();
		cov_state.no_interpreter = 1;
		cov_state_end();
		return -1;
	}
	if (gil_missing && !cov_py.Eval_ThreadsInitialized()) {
		set_error("Python %.6s here has no GIL yet (it makes one when the program "
			  "starts its first thread), and the thread covinject borrowed "
			  "could not make it: %s; start again", cov_py.GetVersion(), gil_why);
		return -1;
	}
	set_step(COV_STEP_GIL);
	gil = gil_take();
	set_step(COV_STEP_INSTALL);
	probing = 0;
	rc = scope_init(err, sizeof(err));
	if (!rc)
		rc = cov_collect_start(&cov_py, &(struct cov_collect_opts){
			cov_cfg.branch, cov_cfg.collector, cov_cfg.gil_at_requests,
			cov_cfg.watch_ms },
			&info, err, sizeof(err));
	if (!rc && (rc = cov_hooks_install(err, sizeof(err))))
		cov_collect_stop();
	if (!rc)
		cov_got_install(info.tool_id < 0);
	if (rc)
		cov_collect_release();
	else if (cov_cfg.gil_at_requests && cov_cfg.import_lines)
		cov_modules_import_lines(&cov_py, &exiting, 1);	/* this hold, not the next */
	count_interpreters(interps);
	gil_give(gil);
	if (rc) {
		set_error("start collecting: %s", err);
		return -1;
	}
	cov_state_begin();
	cov_state.py_hex = cov_py.hex;
	cov_state.tool_id = info.tool_id;
	cov_state.collector_asked = (uint32_t)cov_cfg.collector;
	memcpy(cov_state.trace_why, info.trace_why, sizeof(cov_state.trace_why));
	probing = info.probes;
	cov_state.probes = 0;	/* publish_probes: 1 if probing */
	cov_state.threads = info.threads;
	cov_state.skipped_threads = info.skipped;
	publish_interpreters(interps);
	publish_probes();
	cov_state_end();
	return 0;
}

static void teardown(void)
{
	int gil = gil_take();

	cov_got_remove();
	cov_hooks_remove();
	cov_collect_stop();
	cov_collect_release();
	gil_give(gil);
}

/* With the GIL, not exiting: the sweep, and what it found published. */
static void sweep_locked(void)
{
	struct cov_sweep w;
	uint32_t interps[3];

	cov_collect_sweep(&w);
	if (is_exiting())
		return;	/* a visit let cov_on_exit run: touch nothing more */
	cov_hooks_sweep();
	count_interpreters(interps);
	cov_state_begin();
	cov_state.threads_now = w.live;
	cov_state.threads_ours = w.ours;
	cov_state.removed = w.removed;
	cov_state.replaced = w.replaced;
	cov_state.foreign = w.foreign;
	cov_state.hook_lost_ns = w.hook_lost_ns;
	cov_state.monitoring_lost = w.monitoring_lost;
	cov_state.monitoring_lost_ns = w.monitoring_lost_ns;
	cov_state.handlers_lost = cov_signals_lost();
	publish_interpreters(interps);
	publish_probes();
	cov_state.sweeps++;
	cov_state_end();
}

/* Every second: late threads get the tracer (<= 3.11), and where
 * collection stopped without us is found (all versions). */
static void sweep(void)
{
	int gil;

	/* uWSGI without threads lends the GIL only while a request runs
	 * Python: a sweep would spend that chance, and there are no threads */
	if (is_exiting() || cov_cfg.gil_at_requests)
		return;
	gil = gil_take();
	if (!is_exiting())
		sweep_locked();
	gil_give(gil);
}

/* Wait for a request; returns its byte or 0 on timeout.  Coalesces: stop
 * wins over reset, reset over dump. */
static int next_request(int timeout_ms)
{
	struct pollfd p = { wake[0], POLLIN, 0 };
	char buf[256];
	int req = 0;
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	while ((n = read(wake[0], buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == COV_REQ_STOP || (buf[i] == COV_REQ_RESET && req != COV_REQ_STOP) ||
			    (buf[i] == COV_REQ_DUMP && !req))
				req = buf[i];
	return req;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Periodic snapshot, only when something new ran since the last one. */
static void maybe_periodic(int64_t *next)
{
	int changed;

	if (!cov_cfg.interval_ms || now_ms() < *next)
		return;
	*next = now_ms() + cov_cfg.interval_ms;
	pthread_mutex_lock(&write_lock);
	changed = __atomic_load_n(&cov_state.files, __ATOMIC_RELAXED) != dumped_files ||
		  __atomic_load_n(&cov_state.lines, __ATOMIC_RELAXED) != dumped_lines;
	pthread_mutex_unlock(&write_lock);
	if (changed)
		dump(0);
}

static void serve(void)
{
	int64_t next = now_ms() + cov_cfg.interval_ms;
	int req, wait, passing = 1;

	for (;;) {
		if (passing)
			passing = probe_slice();
		wait = passing ? 0 : SWEEP_MS;
		if (cov_cfg.interval_ms && next - now_ms() < wait)
			wait = next - now_ms() > 0 ? (int)(next - now_ms()) : 0;
		req = next_request(wait);
		pthread_mutex_lock(&write_lock);	/* outdir: see the rules */
		while (dir_sock[0] >= 0 && take_dir() == 1)
			;	/* dump -o, stop -o: sent before the request */
		pthread_mutex_unlock(&write_lock);
		if (is_exiting() || req == COV_REQ_STOP)
			return;
		if (req) {
			cov_state_begin();
			cov_state.dump_requests++;
			cov_state_end();
			dump(req == COV_REQ_RESET);
		} else if (!passing) {
			sweep();
			maybe_periodic(&next);
		}
	}
}

static void *payload_main(void *arg)
{
	int mode = (int)(intptr_t)arg;
	sigset_t all;

	cov_collector_thread = 1;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (mode == RUN_ADOPT) {
		/* an unhooked child's inherited collector goes, then a fresh one */
		cov_signals_restore();
		set_step(COV_STEP_GIL);
		teardown();
	}
	if (mode != RUN_FORKED) {
		if (open_out() || need_sqlite() || setup()) {
			close_fd(&outdir.dirfd);
			set_phase(COV_FAILED);
			return NULL;
		}
		set_step(COV_STEP_SIGNALS);
		if (cov_signals_install(wake[1])) {
			set_error("install signal handlers: %s", strerror(errno));
			teardown();
			set_phase(COV_FAILED);
			return NULL;
		}
		set_phase(COV_COLLECTING);
		import_lines();
	}
	for (;;) {
		serve();
		if (is_exiting())
			return NULL;	/* cov_on_exit did the rest */
		set_phase(COV_STOPPING);
		if (dump(0) == 0) {
			/* uWSGI without threads: the data is safe now; removing
			 * the collector waits for the GIL, at the next request */
			cov_state_begin();
			cov_state.final_written = 1;
			cov_state_end();
			break;
		}
		/* The final snapshot failed: discard nothing, collect on, and
		 * let stop be asked again (stop -o DIR can write elsewhere). */
		set_phase(COV_COLLECTING);
	}
	cov_signals_restore();
	teardown();
	close_dir_sock();
	close_fd(&outdir.dirfd);
	set_phase(COV_STOPPED);
	return NULL;
}

/* 0 or a positive errno.  Must not wait for anything: no GIL, no Python,
 * just a copy and a pthread_create (and, on 2.7 and 3.6 without a GIL yet,
 * cov_oldapi_make_gil). */
static int start(const char *config, uint64_t running_ip);

/*
 * Called by the injector in a borrowed thread (all signals blocked by the
 * injector); running_ip: where it was caught running Python, 0 if it was
 * parked in a system call.  The injector cannot read our return value (its calls
 * return through a sigreturn), so the outcome goes to the status block too.
 */
EXPORT int cov_start(const char *config, uint64_t running_ip)
{
	int rc = start(config, running_ip);

	cov_state_begin();
	cov_state.start_calls++;
	cov_state.start_error = rc;
	cov_state_end();
	return rc;
}

static int start(const char *config, uint64_t running_ip)
{
	char err[COV_ERR_MAX];
	static int atfork_done;	/* a child inherits the registration too */
	char drain[64];
	uint32_t phase = cov_state.phase;
	int inherited = cov_state.starts && cov_state.pid != getpid();
	/* the parent's collector, live in a child forked without hooks */
	int adopt = inherited && phase == COV_COLLECTING;
	int rc;

	if (!inherited && (phase == COV_STARTING || phase == COV_COLLECTING ||
			   phase == COV_STOPPING))
		return EBUSY;
	if (strlen(config) >= sizeof(cfg_text))
		return E2BIG;
	memcpy(cfg_text, config, strlen(config) + 1);
	if (cov_config_parse(cfg_text, &cov_cfg))
		return EINVAL;
	/* A child's copies were dropped at the fork: it gets a pipe of its own. */
	if (wake[0] < 0 && pipe2(wake, O_CLOEXEC | O_NONBLOCK))
		return errno;
	if (!atfork_done) {	/* a fork waits for a write; see after_fork_child */
		if ((rc = pthread_atfork(before_fork, after_fork, after_fork_child)))
			return rc;
		atfork_done = 1;
	}
	while (read(wake[0], drain, sizeof(drain)) > 0)
		;	/* requests left over from a previous run */
	/* only where there is no GIL yet (2.7, 3.6) is the C-API needed here;
	 * a failure to load is setup's to report, from our thread */
	gil_missing = 0;
	if (!cov_pyapi_threads_initialized()) {
		if (!api_loaded && cov_pyapi_load(&cov_py, err, sizeof(err)) == 0)
			api_loaded = 1;
		gil_missing = api_loaded && cov_oldapi_make_gil((uintptr_t)running_ip,
								 gil_why, sizeof(gil_why));
	}
	__atomic_store_n(&exiting, 0, __ATOMIC_SEQ_CST);
	cov_state_begin();
	cov_state.starts++;
	cov_state.phase = COV_STARTING;
	cov_state.pid = getpid();
	cov_state.wake_fd = wake[1];
	cov_state.dump_sig = cov_cfg.dump_sig;
	cov_state.stop_sig = cov_cfg.stop_sig;
	cov_state.chain = cov_cfg.chain;
	cov_state.interval_ms = cov_cfg.interval_ms;
	reset_counters();
	cov_state.forked = cov_state.handlers_lost = cov_state.unhooked = 0;
	cov_state.final_written = 0;
	cov_state.gil_at_requests = cov_cfg.gil_at_requests;
	cov_state.no_interpreter = 0;
	cov_state.step = COV_STEP_SPAWNED;
	cov_state.step_ns = realtime_ns();
	cov_state_end();
	snprintf(out_shown, sizeof(out_shown), "%s", cov_cfg.out_dir);
	make_names();
	if (cov_cfg.out_fd && (rc = open_dir_sock())) {
		set_phase(COV_FAILED);
		return rc;
	}
	if ((rc = spawn(payload_main, (void *)(intptr_t)(adopt ? RUN_ADOPT : RUN_START)))) {
		set_phase(COV_FAILED);
		return rc;
	}
	return 0;
}
