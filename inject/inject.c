/*
 * inject.c - borrow one thread of a live process, make it load our payload
 * and call cov_start(config), then give the thread back exactly as it was.
 *
 * The recipe (DESIGN.md, "the path of one start"):
 *   1. resolve memfd_create/dlopen/dlerror/close in the target's own libc;
 *   2. pick a thread parked in an idle syscall (or, failing that, one that
 *      is running interpreter code), PTRACE_SEIZE + PTRACE_INTERRUPT it;
 *   3. save its general registers, extended state and signal mask; block
 *      every signal in it while we use it;
 *   4. remote calls: memfd_create -> (we write the bytes through
 *      /proc/PID/fd/N) -> dlopen("/proc/self/fd/N") -> cov_start -> close;
 *   5. restore everything and detach: a syscall it was parked in restarts.
 * Step 4 is skipped down to cov_start when the payload is already mapped.
 *
 * The scratch area lives on the borrowed thread's own stack, below the red
 * zone; it is dead memory to the thread once we give it back:
 *
 *	saved sp ->  +-----------------------+
 *	             | red zone (128 bytes)  |  untouched
 *	             +-----------------------+ <- strings
 *	             | "/proc/self/fd/N\0"   |
 *	             | config text\0         |  SCRATCH_BYTES
 *	             +-----------------------+ <- call sp (16-aligned)
 *	             | 0 (return address)    |  callee faults on return: our stop
 *	             | callee frames ...     |
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "inject.h"
#include "elf.h"
#include "maps.h"
#include "ptrace.h"

#define SCRATCH_BYTES	(16 * 1024)
#define XSTATE_BYTES	(16 * 1024)
#define MAX_THREADS	256
#define BUSY_TRIES	50

/* Values from <sys/mman.h> and <dlfcn.h>, fixed by the kernel and glibc ABI. */
#define R_MFD_CLOEXEC	1
#define R_RTLD_NOW	2

struct libc_fns {
	raddr_t memfd_create, dlopen, dlerror, close;
};

struct borrowed {
	pid_t tid;
	long syscall;
	struct arch_regs regs;
	unsigned char xstate[XSTATE_BYTES];
	size_t xstate_len;
	uint64_t sigmask;
	int seized, saved;
	int64_t t_stop;
};

int inject_fail(struct inject_err *e, int err, const char *fmt, ...)
{
	va_list ap;

	if (e && !e->msg[0]) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return err > 0 ? -err : (err ? err : -EIO);
}

void inject_logf(struct inject_err *e, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!e || !e->log || !e->log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	e->log->fn(e->log->arg, line);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int inject_read(pid_t pid, raddr_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

static int remote_write(pid_t pid, raddr_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

/* Address of sym in the mapped file that matches, from that file's ELF. */
static int resolve(pid_t pid, maps_match_fn match, const char *sym,
		   raddr_t *addr)
{
	struct lib_map lm;
	struct elf_sym es;
	int r;

	if ((r = maps_find(pid, match, &lm)))
		return r;
	if ((r = elf_lookup_file(lm.map_file, sym, &es)))
		return r;
	*addr = lm.start - es.load_vaddr + es.value;
	return 0;
}

int inject_payload_symbol(pid_t pid, const char *sym, raddr_t *addr,
			  struct inject_err *err)
{
	int r = resolve(pid, maps_is_payload, sym, addr);

	if (r && r != -ENOENT)
		return inject_fail(err, r, "find %s in the payload mapped in %d: %s",
				   sym, (int)pid, strerror(-r));
	return r;
}

static int resolve_libc(pid_t pid, struct libc_fns *f, struct inject_err *err)
{
	static const struct { const char *name; size_t off; } want[] = {
		{ "memfd_create", offsetof(struct libc_fns, memfd_create) },
		{ "dlopen", offsetof(struct libc_fns, dlopen) },
		{ "dlerror", offsetof(struct libc_fns, dlerror) },
		{ "close", offsetof(struct libc_fns, close) },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		raddr_t *slot = (raddr_t *)((char *)f + want[i].off);
		int r = resolve(pid, maps_is_libc, want[i].name, slot);

		/* glibc < 2.34 keeps dlopen/dlerror in libdl. */
		if (r == -ENOENT)
			r = resolve(pid, maps_is_libdl, want[i].name, slot);
		if (r)
			return inject_fail(err, r, "find %s in the libc of %d: %s",
					   want[i].name, (int)pid, strerror(-r));
	}
	return 0;
}

/* ---- choosing and borrowing a thread ---------------------------------- */

struct candidate {
	pid_t tid;
	long nr;
	int rank;
};

/* /proc/PID/task/TID/syscall: "nr arg1 ... arg6 sp pc", or "running". */
static int read_syscall(pid_t pid, pid_t tid, long *nr, uint64_t *arg1)
{
	char fn[96], buf[256];
	unsigned long long a0 = 0, a1 = 0;
	ssize_t n;
	int fd;

	snprintf(fn, sizeof(fn), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	fd = open(fn, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = 0;
	if (sscanf(buf, "%ld %llx %llx", nr, &a0, &a1) < 1)
		*nr = -2;	/* "running" */
	*arg1 = a1;
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
		uint64_t arg1 = 0;
		long nr;

		if (d->d_name[0] == '.')
			continue;
		c[n].tid = atoi(d->d_name);
		if (read_syscall(pid, c[n].tid, &nr, &arg1))
			continue;
		c[n].nr = nr;
		c[n].rank = nr >= 0 ? arch_idle_rank(nr, arg1) : 0;
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
	b->t_stop = now_ns();
	if (!ptr_is_event_stop(status))
		return inject_fail(err, -EAGAIN, "stop thread %d: unexpected stop 0x%x",
				   (int)b->tid, status);
	b->regs.len = sizeof(b->regs.u);
	if ((r = ptr_getregset(b->tid, 1 /* NT_PRSTATUS */, b->regs.u.bytes,
			       &b->regs.len)))
		return inject_fail(err, r, "read registers of thread %d: %s",
				   (int)b->tid, strerror(-r));
	return 0;
}

static void release(struct borrowed *b)
{
	if (b->seized)
		ptr_detach(b->tid);
	b->seized = 0;
}

/* Is ip inside an executable mapping of the interpreter itself? */
static int in_interpreter(pid_t pid, raddr_t ip)
{
	char fn[64], line[MAPS_PATH_MAX + 128];
	struct map_entry e;
	FILE *f;
	int yes = 0;

	snprintf(fn, sizeof(fn), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(fn, "re")))
		return 0;
	while (!yes && fgets(line, sizeof(line), f))
		yes = !maps_parse_line(line, &e) && e.perms[2] == 'x' &&
		      ip >= e.start && ip < e.end && maps_is_python(e.path);
	fclose(f);
	return yes;
}

/*
 * Stop a thread that is parked in an idle syscall (verified from its
 * registers after the stop, since it may have woken meanwhile).  If no
 * thread is idle, accept one stopped while running interpreter code, which
 * holds no libc or loader lock either (it does hold the GIL; other Python
 * threads wait the ~1 ms we use it).
 */
static int borrow(pid_t pid, struct borrowed *b, struct inject_err *err)
{
	struct candidate c[MAX_THREADS];
	int n, r;

	for (int attempt = 0; attempt < BUSY_TRIES; attempt++) {
		if ((n = list_threads(pid, c, MAX_THREADS)) < 0)
			return inject_fail(err, n, "list threads of %d: %s",
					   (int)pid, strerror(-n));
		if (n == 0)
			return inject_fail(err, -ESRCH, "list threads of %d: none left",
					   (int)pid);
		for (int i = 0; i < n; i++) {
			long nr;

			if (c[i].rank == 0 && attempt < 3)
				break;	/* give idle threads a few chances first */
			b->tid = c[i].tid;
			if ((r = stop_thread(b, err))) {
				release(b);
				if (r == -EPERM || r == -ESRCH)
					return r;
				err->msg[0] = 0;
				continue;
			}
			nr = arch_interrupted_syscall(&b->regs);
			if ((c[i].rank > 0 && nr == c[i].nr) ||
			    (nr < 0 && in_interpreter(pid, arch_ip(&b->regs)))) {
				b->syscall = nr;
				return 0;
			}
			release(b);
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
	b->saved = 1;
	/* No handler of the host may run on our borrowed frames. */
	if ((r = ptr_setsigmask(b->tid, ~0ULL)))
		return inject_fail(err, r, "block signals in thread %d: %s",
				   (int)b->tid, strerror(-r));
	return 0;
}

static int restore_state(struct borrowed *b, struct inject_err *err)
{
	int r = 0, q;

	if (!b->saved)
		return 0;
	if ((q = ptr_setregset(b->tid, 1, b->regs.u.bytes, b->regs.len)))
		r = inject_fail(err, q, "restore registers of thread %d: %s",
				(int)b->tid, strerror(-q));
	if ((q = ptr_setregset(b->tid, arch_xstate_note(), b->xstate, b->xstate_len)))
		r = inject_fail(err, q, "restore vector registers of thread %d: %s",
				(int)b->tid, strerror(-q));
	if ((q = ptr_setsigmask(b->tid, b->sigmask)))
		r = inject_fail(err, q, "restore signal mask of thread %d: %s",
				(int)b->tid, strerror(-q));
	return r;
}

/* ---- remote calls ------------------------------------------------------ */

static raddr_t call_sp(const struct borrowed *b)
{
	return (arch_sp(&b->regs) - ARCH_RED_ZONE - SCRATCH_BYTES) & ~15ULL;
}

static raddr_t scratch(const struct borrowed *b)
{
	return call_sp(b);
}

/*
 * Run fn(args) in the borrowed thread; the callee returns to address 0,
 * faults, and the SIGSEGV stop hands the thread back to us.  The signal is
 * never delivered: the next resume or detach passes signal 0.
 */
static int remote_call(pid_t pid, struct borrowed *b, const char *what,
		       raddr_t fn, const uint64_t *args, int nargs,
		       uint64_t *result, struct inject_err *err)
{
	struct arch_regs r = b->regs;
	raddr_t slot;
	uint64_t zero = 0;
	int status, q;

	arch_prepare_call(&r, fn, args, nargs, call_sp(b), &slot);
	if (slot && (q = remote_write(pid, slot, &zero, sizeof(zero))))
		return inject_fail(err, q, "%s in %d: write the return address: %s",
				   what, (int)pid, strerror(-q));
	if ((q = ptr_setregset(b->tid, 1, r.u.bytes, r.len)) ||
	    (q = ptr_cont(b->tid, 0)) || (q = ptr_wait(b->tid, &status)))
		return inject_fail(err, q, "%s in %d: %s", what, (int)pid, strerror(-q));
	if (!WIFSTOPPED(status))
		return inject_fail(err, -ESRCH, "%s in %d: the process ended (status 0x%x)",
				   what, (int)pid, status);
	r.len = sizeof(r.u);
	if ((q = ptr_getregset(b->tid, 1, r.u.bytes, &r.len)))
		return inject_fail(err, q, "%s in %d: read result: %s", what,
				   (int)pid, strerror(-q));
	if (WSTOPSIG(status) != SIGSEGV || arch_ip(&r) != 0)
		return inject_fail(err, -EFAULT, "%s in %d: stopped by signal %d at "
				   "0x%llx instead of returning", what, (int)pid,
				   WSTOPSIG(status), (unsigned long long)arch_ip(&r));
	*result = arch_call_result(&r);
	return 0;
}

static int read_payload(const char *path, unsigned char **buf, size_t *len,
			struct inject_err *err)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return inject_fail(err, -errno, "open payload %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || !(*buf = malloc(st.st_size))) {
		close(fd);
		return inject_fail(err, -EIO, "read payload %s: empty or unreadable", path);
	}
	n = read(fd, *buf, st.st_size);
	close(fd);
	if (n != st.st_size) {
		free(*buf);
		return inject_fail(err, -EIO, "read payload %s: short read", path);
	}
	*len = n;
	return 0;
}

static int fill_memfd(pid_t pid, int rfd, const unsigned char *buf, size_t len,
		      struct inject_err *err)
{
	char fn[64];
	int fd, r = 0;

	snprintf(fn, sizeof(fn), "/proc/%d/fd/%d", (int)pid, rfd);
	if ((fd = open(fn, O_WRONLY | O_CLOEXEC)) < 0)
		return inject_fail(err, -errno, "open %s: %s", fn, strerror(errno));
	for (size_t done = 0; done < len && !r;) {
		ssize_t n = write(fd, buf + done, len - done);

		if (n < 0 && errno != EINTR)
			r = inject_fail(err, -errno, "write %s: %s", fn, strerror(errno));
		done += n > 0 ? (size_t)n : 0;
	}
	close(fd);
	return r;
}

static void remote_dlerror(pid_t pid, struct borrowed *b, const struct libc_fns *f,
			   char *out, size_t len)
{
	struct inject_err ignore = { .msg = "x" };
	uint64_t p = 0;

	snprintf(out, len, "unknown error");
	if (remote_call(pid, b, "dlerror", f->dlerror, NULL, 0, &p, &ignore) || !p)
		return;
	for (size_t i = 0; i + 1 < len; i++) {
		if (inject_read(pid, p + i, out + i, 1) || !out[i])
			return;
		out[i + 1] = 0;
	}
}

/* memfd + write + dlopen; leaves *rfd open (or -1) for the caller to close. */
static int load_payload(pid_t pid, struct borrowed *b, const struct libc_fns *f,
			const unsigned char *bytes, size_t len, int *rfd,
			struct inject_err *err)
{
	char path[64], why[256];
	raddr_t s = scratch(b);
	uint64_t a[2], r;
	int q;

	if ((q = remote_write(pid, s, PAYLOAD_MEMFD_NAME, sizeof(PAYLOAD_MEMFD_NAME))))
		return inject_fail(err, q, "write to the stack of %d: %s", (int)pid,
				   strerror(-q));
	a[0] = s;
	a[1] = R_MFD_CLOEXEC;
	if ((q = remote_call(pid, b, "memfd_create", f->memfd_create, a, 2, &r, err)))
		return q;
	if ((int)r < 0)
		return inject_fail(err, -ENOMEM, "memfd_create in %d failed", (int)pid);
	*rfd = (int)r;
	if ((q = fill_memfd(pid, *rfd, bytes, len, err)))
		return q;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", *rfd);
	if ((q = remote_write(pid, s, path, strlen(path) + 1)))
		return inject_fail(err, q, "write to the stack of %d: %s", (int)pid,
				   strerror(-q));
	a[0] = s;
	a[1] = R_RTLD_NOW;
	if ((q = remote_call(pid, b, "dlopen", f->dlopen, a, 2, &r, err)))
		return q;
	if (!r) {
		remote_dlerror(pid, b, f, why, sizeof(why));
		return inject_fail(err, -ENOEXEC, "dlopen of the payload in %d: %s",
				   (int)pid, why);
	}
	return 0;
}

static int call_start(pid_t pid, struct borrowed *b, const char *config,
		      struct inject_err *err)
{
	raddr_t start, s = scratch(b);
	uint64_t a[1] = { s }, r;
	size_t len = strlen(config) + 1;
	int q;

	if (len > SCRATCH_BYTES - 64)
		return inject_fail(err, -E2BIG, "configuration too long (%zu bytes)", len);
	if ((q = inject_payload_symbol(pid, "cov_start", &start, err)))
		return inject_fail(err, q, "find cov_start in %d: %s", (int)pid,
				   strerror(-q));
	if ((q = remote_write(pid, s, config, len)))
		return inject_fail(err, q, "write to the stack of %d: %s", (int)pid,
				   strerror(-q));
	if ((q = remote_call(pid, b, "cov_start", start, a, 1, &r, err)))
		return q;
	if ((int)r != 0)
		return inject_fail(err, -(int)r, "cov_start in %d: %s", (int)pid,
				   strerror((int)r < 0 ? -(int)r : (int)r));
	return 0;
}

int inject_start(pid_t pid, const char *payload_path, const char *config,
		 struct inject_stats *st, struct inject_err *err)
{
	static struct borrowed b;	/* 16 KiB of xstate: not on our stack */
	struct libc_fns f;
	unsigned char *bytes = NULL;
	size_t len = 0;
	raddr_t dummy;
	uint64_t ignored;
	int r, q, rfd = -1, loaded;

	memset(&b, 0, sizeof(b));
	/* 1. everything we can do without stopping the target */
	loaded = inject_payload_symbol(pid, "cov_start", &dummy, err) == 0;
	if (!loaded && ((r = resolve_libc(pid, &f, err)) ||
			(r = read_payload(payload_path, &bytes, &len, err))))
		return r;
	if (loaded && (r = resolve_libc(pid, &f, err)))
		return r;
	/* 2. borrow a thread */
	if ((r = borrow(pid, &b, err)))
		goto out_free;
	inject_logf(err, "borrowed thread %d (%s %ld)", (int)b.tid,
		    b.syscall >= 0 ? "syscall" : "running, syscall", b.syscall);
	/* 3. save what we will change */
	if ((r = save_state(&b, err)))
		goto out_restore;
	/* 4. the remote calls */
	if (!loaded && (r = load_payload(pid, &b, &f, bytes, len, &rfd, err)))
		goto out_close;
	r = call_start(pid, &b, config, err);
out_close:
	if (rfd >= 0) {
		uint64_t a[1] = { (uint64_t)rfd };

		if ((q = remote_call(pid, &b, "close", f.close, a, 1, &ignored, err)) && !r)
			r = q;
	}
out_restore:
	/* 5. give the thread back */
	if ((q = restore_state(&b, err)) && !r)
		r = q;
	release(&b);
	if (st) {
		st->tid = b.tid;
		st->syscall = b.syscall;
		st->stopped_ns = now_ns() - b.t_stop;
		st->loaded = !loaded && rfd >= 0;
	}
out_free:
	free(bytes);
	return r;
}

/* The interpreter image (libpython3.X.so or python3.X) names the version. */
int inject_python_version(pid_t pid, int *major, int *minor, char *image,
			  size_t imagelen)
{
	struct lib_map lm;
	const char *b;
	int r;

	if ((r = maps_find(pid, maps_is_python, &lm)))
		return r;
	b = strrchr(lm.path, '/');
	b = b ? b + 1 : lm.path;
	if (!strncmp(b, "lib", 3))
		b += 3;
	if (sscanf(b, "python%d.%d", major, minor) != 2)
		return -ENOENT;
	snprintf(image, imagelen, "%s", lm.path);
	return 0;
}
