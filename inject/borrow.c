/*
 * borrow.c - choose one thread of the target and stop it: preferably one
 * parked in an idle system call (it holds no libc or loader lock and has
 * released the GIL), else one caught running interpreter code.  Save what a
 * remote call will change: registers, vector state, signal mask.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"
#include "maps.h"
#include "ptrace.h"

#define MAX_THREADS	256
#define BUSY_TRIES	50
#define LOSSY_TRIES	10	/* ~150 ms for a thread whose syscall restarts */
#define UNKNOWN		(-3)	/* syscall file unreadable: judge after the stop */

int64_t inject_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct candidate {
	pid_t tid;
	long nr;
	int rank;
};

/*
 * /proc/PID/task/TID/syscall: "nr arg1 ... arg6 sp pc", or "running".  It
 * is mode 0400 of the target's user: a caller of another uid with only
 * CAP_SYS_PTRACE cannot read it (the mode is checked before ptrace
 * access), and then the registers decide after the stop (UNKNOWN).
 */
static int read_syscall(pid_t pid, pid_t tid, long *nr, uint64_t args[6])
{
	char fn[96], buf[256];
	unsigned long long a[6] = { 0 };
	ssize_t n;
	int fd;

	snprintf(fn, sizeof(fn), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	fd = open(fn, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		*nr = UNKNOWN;
		return 0;
	}
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = 0;
	if (sscanf(buf, "%ld %llx %llx %llx %llx %llx %llx", nr, &a[0], &a[1], &a[2],
		   &a[3], &a[4], &a[5]) < 1)
		*nr = -2;	/* "running" */
	for (int i = 0; i < 6; i++)
		args[i] = a[i];
	return 0;
}

static int by_rank(const void *a, const void *b)
{
	return ((const struct candidate *)b)->rank - ((const struct candidate *)a)->rank;
}

static int list_threads(pid_t pid, struct candidate *c, int max)
{
	char fn[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(fn, sizeof(fn), "/proc/%d/task", (int)pid);
	if (!(dir = opendir(fn)))
		return -errno;
	while ((d = readdir(dir)) && n < max) {
		uint64_t args[6];
		long nr;

		if (d->d_name[0] == '.')
			continue;
		c[n].tid = atoi(d->d_name);
		if (read_syscall(pid, c[n].tid, &nr, args))
			continue;
		c[n].nr = nr;
		c[n].rank = nr >= 0 ? arch_idle_rank(nr, args) : nr == UNKNOWN ? 2 : 0;
		n++;
	}
	closedir(dir);
	qsort(c, n, sizeof(*c), by_rank);
	return n;
}

static int stop_thread(struct borrowed *b, struct inject_err *err)
{
	int status, r;

	if ((r = ptr_seize(b->tid)))
		return inject_fail(err, r, "attach to thread %d: %s", (int)b->tid,
				   strerror(-r));
	b->seized = 1;
	if ((r = ptr_interrupt(b->tid)) || (r = ptr_wait(b->tid, &status)))
		return inject_fail(err, r, "stop thread %d: %s", (int)b->tid,
				   strerror(-r));
	b->t_stop = inject_now_ns();
	if (!ptr_is_event_stop(status))
		return inject_fail(err, -EAGAIN, "stop thread %d: unexpected stop 0x%x",
				   (int)b->tid, status);
	b->regs.len = sizeof(b->regs.u);
	if ((r = ptr_getregset(b->tid, NT_PRSTATUS, b->regs.u.bytes,
			       &b->regs.len)))
		return inject_fail(err, r, "read registers of thread %d: %s",
				   (int)b->tid, strerror(-r));
	return 0;
}

void inject_release(struct borrowed *b)
{
	if (b->seized)
		ptr_detach(b->tid);
	b->seized = 0;
}

static int interpreter_code_at(const struct map_entry *e, void *arg)
{
	raddr_t ip = *(raddr_t *)arg;

	return e->perms[2] == 'x' && ip >= e->start && ip < e->end && maps_is_python(e->path);
}

/* Is ip inside an executable mapping of the interpreter itself? */
static int in_interpreter(pid_t pid, raddr_t ip)
{
	return maps_each(pid, interpreter_code_at, &ip) > 0;
}

/* Is the stopped thread b a place to borrow, the candidate it was? */
static int suitable(pid_t pid, const struct candidate *c, struct borrowed *b)
{
	uint64_t args[6];
	long nr = arch_interrupted_syscall(&b->regs);

	if (nr < 0)
		return in_interpreter(pid, arch_ip(&b->regs));
	arch_syscall_args(&b->regs, args);
	return (c->rank > 0 && nr == c->nr) ||
	       (c->nr == UNKNOWN && arch_idle_rank(nr, args) > 0);
}

/*
 * Stop a thread that is parked in an idle syscall (verified from its
 * registers after the stop, since it may have woken meanwhile).  If no
 * thread is idle, accept one stopped while running interpreter code, which
 * holds no libc or loader lock either (it does hold the GIL; other Python
 * threads wait the ~1 ms we use it).  A thread whose syscall would come
 * back with EINTR after our visit (arch_restart_lost: a C sleep() cut
 * short) is taken only when, for about 150 ms, no other was found.  Only
 * stopping and releasing a thread is transparent: the kernel restarts its
 * call as after any stop.
 */
static int find_thread(pid_t pid, struct borrowed *b, struct inject_err *err)
{
	struct candidate c[MAX_THREADS];
	int n, r;

	for (int attempt = 0; attempt < BUSY_TRIES; attempt++) {
		int lossy_ok = attempt >= LOSSY_TRIES;

		if ((n = list_threads(pid, c, MAX_THREADS)) < 0)
			return inject_fail(err, n, "list threads of %d: %s",
					   (int)pid, strerror(-n));
		if (n == 0)
			return inject_fail(err, -ESRCH, "list threads of %d: none left",
					   (int)pid);
		for (int i = 0; i < n; i++) {
			if (c[i].rank == 0 && attempt < 3)
				break;	/* give idle threads a few chances first */
			if (c[i].rank == ARCH_RANK_LOSSY && !lossy_ok)
				continue;
			b->tid = c[i].tid;
			if ((r = stop_thread(b, err))) {
				inject_release(b);
				/* a thread that just ended is no reason to fail */
				if (r == -EPERM || (r == -ESRCH && kill(pid, 0)))
					return r;
				err->msg[0] = 0;
				continue;
			}
			if (suitable(pid, &c[i], b) &&
			    (lossy_ok || !arch_restart_lost(&b->regs))) {
				b->syscall = arch_interrupted_syscall(&b->regs);
				return 0;
			}
			inject_release(b);
		}
		usleep(attempt < 3 ? 2000 : 20000);
	}
	return inject_fail(err, -EBUSY, "find a thread of %d that is idle or running "
			   "Python code: every try caught one inside a library call",
			   (int)pid);
}

static int save_state(struct borrowed *b, struct inject_err *err)
{
	int r;

	b->xstate_len = sizeof(b->xstate);
	if ((r = ptr_getregset(b->tid, arch_xstate_note(), b->xstate, &b->xstate_len)))
		return inject_fail(err, r, "read vector registers of thread %d: %s",
				   (int)b->tid, strerror(-r));
	if ((r = ptr_getsigmask(b->tid, &b->sigmask)))
		return inject_fail(err, r, "read signal mask of thread %d: %s",
				   (int)b->tid, strerror(-r));
	return 0;
}

int inject_borrow(pid_t pid, struct borrowed *b, struct inject_err *err)
{
	int r;

	if ((r = find_thread(pid, b, err)))
		return r;
	if ((r = save_state(b, err)))
		inject_release(b);
	return r;
}
