/*
 * inject.c - make a live process load our payload and call
 * cov_start(config, running_ip); the one interface cli/ uses (inject.h).
 *
 * The recipe (DESIGN.md, "the path of one start"):
 *   1. resolve memfd_create/dlopen/close and the sigreturn code in the
 *      target's own libc, read from its memory: nothing is stopped yet;
 *   2. borrow one thread (borrow.c): idle in a syscall, or running Python;
 *   3. self-completing remote calls in it (remote.c):
 *      memfd_create -> (we write the bytes through /proc/PID/fd/N) ->
 *      dlopen("/proc/self/fd/N") -> cov_start(config, running_ip) -> close;
 *   4. detach: the kernel's sigreturn puts the thread back as it was and
 *      restarts the syscall it was parked in.
 * Step 3 shrinks to cov_start when the payload is mapped already, and a
 * memfd left by an earlier covinject that was killed is reused.  If we are
 * killed at any instant, the thread still completes and is restored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "elf.h"
#include "internal.h"
#include "maps.h"

/* Values from <sys/mman.h> and <dlfcn.h>, fixed by the kernel and glibc ABI. */
#define R_MFD_CLOEXEC	1
#define R_RTLD_NOW	2

struct libc_fns {
	raddr_t memfd_create, dlopen, close;
	raddr_t sigreturn;	/* the sigreturn code every call returns into */
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

int inject_read(pid_t pid, raddr_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

static int read_target(void *ctx, uint64_t addr, void *buf, size_t len)
{
	return inject_read(*(pid_t *)ctx, addr, buf, len);
}

/* Address of sym in the first mapped object that matches, read from the
 * target's memory: exactly what ptrace permits (elf.c). */
static int resolve(pid_t pid, maps_match_fn match, const char *sym,
		   raddr_t *addr)
{
	struct lib_map lm;
	struct elf_image im = { read_target, &pid, 0 };
	uint64_t a;
	int r;

	if ((r = maps_find(pid, match, &lm)))
		return r;
	im.base = lm.start;
	if ((r = elf_image_symbol(&im, sym, &a)))
		return r;
	*addr = a;
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
		{ "close", offsetof(struct libc_fns, close) },
	};
	const unsigned char *code;
	struct lib_map lm;
	size_t clen;
	int r;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		raddr_t *slot = (raddr_t *)((char *)f + want[i].off);

		r = resolve(pid, maps_is_libc, want[i].name, slot);
		/* glibc < 2.34 keeps dlopen in libdl. */
		if (r == -ENOENT)
			r = resolve(pid, maps_is_libdl, want[i].name, slot);
		if (r)
			return inject_fail(err, r, "find %s in the libc of %d: %s",
					   want[i].name, (int)pid, strerror(-r));
	}
	code = arch_sigreturn_code(&clen);
	if ((r = maps_find(pid, maps_is_libc, &lm)) == 0) {
		struct elf_image im = { read_target, &pid, lm.start };

		r = elf_image_find_code(&im, code, clen, &f->sigreturn);
	}
	if (r)
		return inject_fail(err, r, "find the sigreturn code in the libc of %d: %s",
				   (int)pid, strerror(-r));
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
/* A memfd of ours in the target (left by a covinject killed mid-attach). */
static int find_memfd(pid_t pid)
{
	int fd = inject_find_fd(pid, maps_is_payload);

	return fd >= 0 ? fd : -1;
}

/* Our bytes into the target's memfd rfd, through a copy of that fd: it
 * shares the target's file offset, so write at explicit offsets. */
static int fill_memfd(pid_t pid, int rfd, const unsigned char *buf, size_t len,
		      struct inject_err *err)
{
	int fd = inject_take_fd(pid, rfd, O_RDWR), r = 0;

	if (fd < 0)
		return inject_fail(err, fd, "take the memfd (fd %d) of %d: %s", rfd,
				   (int)pid, strerror(-fd));
	if (ftruncate(fd, 0))
		r = inject_fail(err, -errno, "truncate the memfd of %d: %s", (int)pid,
				strerror(errno));
	for (size_t done = 0; done < len && !r;) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)done);

		if (n < 0 && errno != EINTR)
			r = inject_fail(err, -errno, "write the memfd of %d: %s", (int)pid,
					strerror(errno));
		done += n > 0 ? (size_t)n : 0;
	}
	close(fd);
	return r;
}

/*
 * memfd (new, or one left over) + our bytes + dlopen.  Sets *rfd to the
 * memfd, for the caller to close.  Call results are read from their
 * effects (remote.c): the fd from /proc/PID/fd, the library from the maps.
 */
static int load_payload(struct excursion *x, const struct libc_fns *f,
			const unsigned char *bytes, size_t len, int *rfd,
			struct inject_err *err)
{
	char path[64];
	raddr_t loaded;
	uint64_t a[2];
	int r;

	if ((*rfd = find_memfd(x->pid)) < 0) {
		if ((r = inject_write(x->pid, x->strings, PAYLOAD_MEMFD_NAME,
				      sizeof(PAYLOAD_MEMFD_NAME))))
			return inject_fail(err, r, "write to the stack of %d: %s",
					   (int)x->pid, strerror(-r));
		a[0] = x->strings;
		a[1] = R_MFD_CLOEXEC;
		if ((r = inject_exc_call(x, "memfd_create", f->memfd_create, a, 2, err)))
			return r;
		if ((*rfd = find_memfd(x->pid)) < 0)
			return inject_fail(err, -ENOMEM, "memfd_create in %d failed",
					   (int)x->pid);
	}
	if ((r = fill_memfd(x->pid, *rfd, bytes, len, err)))
		return r;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", *rfd);
	if ((r = inject_write(x->pid, x->strings, path, strlen(path) + 1)))
		return inject_fail(err, r, "write to the stack of %d: %s", (int)x->pid,
				   strerror(-r));
	a[0] = x->strings;
	a[1] = R_RTLD_NOW;
	if ((r = inject_exc_call(x, "dlopen", f->dlopen, a, 2, err)))
		return r;
	if (inject_payload_symbol(x->pid, "cov_start", &loaded, err))
		return inject_fail(err, -ENOEXEC, "dlopen of the payload in %d failed "
				   "(is /proc mounted in its namespace?)", (int)x->pid);
	return 0;
}

/*
 * Close ours, and any memfd of ours left by a covinject killed while the
 * thread was still on its way into memfd_create (it completes on its own,
 * so that one may appear after the next start looked): none stays open.
 */
static int close_memfds(struct excursion *x, const struct libc_fns *f, int rfd,
			struct inject_err *err)
{
	uint64_t a[1];
	int r;

	for (int i = 0; i < 8 && (rfd >= 0 || (rfd = find_memfd(x->pid)) >= 0); i++) {
		a[0] = (uint64_t)rfd;
		if ((r = inject_exc_call(x, "close", f->close, a, 1, err)))
			return r;
		rfd = -1;
	}
	return 0;
}

/* cov_start(config, running_ip): its outcome shows in the payload's status
 * block. */
static int call_start(struct excursion *x, const char *config, struct inject_err *err)
{
	raddr_t start;
	uint64_t a[2] = { x->strings, x->b->syscall >= 0 ? 0 : arch_ip(&x->b->regs) };
	size_t len = strlen(config) + 1;
	int r;

	if (len > x->strings_len)
		return inject_fail(err, -E2BIG, "configuration too long (%zu bytes)", len);
	if ((r = inject_payload_symbol(x->pid, "cov_start", &start, err)))
		return inject_fail(err, r, "find cov_start in %d: %s", (int)x->pid,
				   strerror(-r));
	if ((r = inject_write(x->pid, x->strings, config, len)))
		return inject_fail(err, r, "write to the stack of %d: %s", (int)x->pid,
				   strerror(-r));
	return inject_exc_call(x, "cov_start", start, a, 2, err);
}

int inject_start(pid_t pid, const char *payload_path, const char *config,
		 struct inject_stats *st, struct inject_err *err)
{
	static struct borrowed b;	/* 32 KiB of xstate: not on our stack */
	struct excursion x;
	struct libc_fns f;
	unsigned char *bytes = NULL;
	size_t len = 0;
	raddr_t dummy;
	int r, q, rfd = -1, loaded;

	memset(&b, 0, sizeof(b));
	/* 1. everything we can do without stopping the target */
	loaded = inject_payload_symbol(pid, "cov_start", &dummy, err) == 0;
	if ((r = resolve_libc(pid, &f, err)) ||
	    (!loaded && (r = read_payload(payload_path, &bytes, &len, err))))
		goto out_free;
	/* 2. borrow a thread */
	if ((r = inject_borrow(pid, &b, err)))
		goto out_free;
	inject_logf(err, "borrowed thread %d (%s %ld)", (int)b.tid,
		    b.syscall >= 0 ? "syscall" : "running, syscall", b.syscall);
	/* 3. the calls, each completing on its own */
	if ((r = inject_exc_begin(&x, pid, &b, f.sigreturn, strlen(config) + 64, err))) {
		inject_release(&b);
		goto out_stats;
	}
	if (!loaded)
		r = load_payload(&x, &f, bytes, len, &rfd, err);
	if (!r)
		r = call_start(&x, config, err);
	if ((q = close_memfds(&x, &f, rfd, err)))
		r = r ? r : q;
	/* 4. give the thread back: its sigreturn restores everything */
	inject_exc_end(&x);
out_stats:
	if (st) {
		st->tid = b.tid;
		st->syscall = b.syscall;
		st->stopped_ns = inject_now_ns() - b.t_stop;
		st->loaded = !loaded && rfd >= 0;
	}
out_free:
	free(bytes);
	return r;
}

/*
 * The interpreter image (libpython3.X.so or python3.X) names the version;
 * a free-threaded build's name has a "t" after it (python3.14t,
 * libpython3.14t.so.1.0: the ABI flag of PEP 703).
 */
int inject_python_version(pid_t pid, int *major, int *minor, int *freethreaded,
			  char *image, size_t imagelen)
{
	struct lib_map lm;
	const char *b;
	int r, n = 0;

	if ((r = maps_find(pid, maps_is_python, &lm)))
		return r;
	b = strrchr(lm.path, '/');
	b = b ? b + 1 : lm.path;
	if (!strncmp(b, "lib", 3))
		b += 3;
	if (sscanf(b, "python%d.%d%n", major, minor, &n) != 2 || !n)
		return -ENOENT;
	*freethreaded = b[n] == 't';
	snprintf(image, imagelen, "%s", lm.path);
	return 0;
}
