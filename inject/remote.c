/*
 * remote.c - calls made in a borrowed thread that complete by themselves.
 *
 * A plain remote call returns to a trap address and needs the tracer alive
 * to put the thread back: kill the tracer mid-call and the thread faults.
 * Ours return into the C library's own sigreturn code with a signal frame
 * we built below the thread's stack pointer, so whatever happens to us the
 * thread finishes the call and the kernel restores its registers, vector
 * state and signal mask, restarting the syscall it was parked in exactly as
 * after a signal handler.  We read nothing from the call's return value
 * (the sigreturn code overwrites it) and learn what the call did from its
 * effects instead.
 *
 * How we learn that a call is over: before each call we block every signal
 * in the thread and queue a marker signal for it (SIGURG, or SIGWINCH if the
 * program blocks SIGURG): the sigreturn unblocks it, so the thread stops for
 * us the moment it is back, before running any of its own code.  The
 * marker is one whose default action is to do nothing: should we die in
 * between, it is ignored (a program with its own handler for it sees one
 * spurious call).  While we trace, the marker never reaches the program.
 * If the program blocks both, we fall back to PTRACE_SYSCALL: stop at every
 * syscall the callee makes until our sigreturn's entry, then chain the next
 * call from there (orig_rax = -1 skips the sigreturn).  That costs a stop
 * per syscall, about 1-2 ms more per attach.
 *
 * The thread's stack during an excursion (addresses grow upward):
 *
 *	          callee frames ...
 *	frame ->  +---------------------------+  % 16 == 8: sp at every call
 *	          | pretcode = sigreturn code |  the callee's return address
 *	          | ucontext: saved registers,|
 *	          |   signal mask, fpstate ---+--.
 *	          | siginfo (unused)          |  |
 *	          +---------------------------+  |
 *	xstate -> | XSAVE area + MAGIC2       |<-'  64-byte aligned
 *	strings ->| call arguments (paths...) |
 *	          +---------------------------+
 *	          | red zone (128 bytes)      |  untouched
 *	saved sp ->
 */
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include "internal.h"
#include "ptrace.h"

static unsigned char xbuf[XSTATE_BYTES + 64];

int inject_write(pid_t pid, raddr_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);

	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

int inject_exc_begin(struct excursion *x, pid_t pid, struct borrowed *b,
		     raddr_t gadget, size_t strings_len, struct inject_err *err)
{
	unsigned char frame[1024];
	raddr_t top = arch_sp(&b->regs) - ARCH_RED_ZONE, xs;
	size_t xlen, fbytes = arch_frame_bytes();
	int r, full;

	memset(x, 0, sizeof(*x));
	x->pid = pid;
	x->b = b;
	x->gadget = gadget;
	x->strings_len = (strings_len + 63) & ~(size_t)63;
	x->strings = (top - x->strings_len) & ~(raddr_t)63;
	memcpy(xbuf, b->xstate, b->xstate_len);
	xlen = arch_fix_xstate(xbuf, b->xstate_len);
	full = xlen > 0;
	if (!full)
		xlen = b->xstate_len < 512 ? b->xstate_len : 512;
	xs = (x->strings - xlen) & ~(raddr_t)(ARCH_XSTATE_ALIGN - 1);
	x->frame = ((xs - fbytes - ARCH_FRAME_ALIGN) & ~(raddr_t)(ARCH_FRAME_ALIGN - 1)) +
		   ARCH_FRAME_MISALIGN;
	/* a marker the program does not block in this thread, if we may signal
	 * it at all (CAP_SYS_PTRACE without CAP_KILL over another uid may not) */
	if (kill(pid, 0))
		x->marker = 0;
	else if (!(b->sigmask & (1ULL << (SIGURG - 1))))
		x->marker = SIGURG;
	else if (!(b->sigmask & (1ULL << (SIGWINCH - 1))))
		x->marker = SIGWINCH;
	if (fbytes > sizeof(frame))
		return inject_fail(err, -E2BIG, "signal frame too large");
	arch_build_frame(frame, &b->regs, b->sigmask, gadget, xs, full);
	if ((r = inject_write(pid, xs, xbuf, xlen)) ||
	    (r = inject_write(pid, x->frame, frame, fbytes)))
		return inject_fail(err, r, "write to the stack of thread %d: %s",
				   (int)b->tid, strerror(-r));
	return 0;
}

/*
 * Resume the thread (stepping: to the next syscall stop) until a stop worth
 * looking at, skipping interrupt stops and stop requests (dropped: not
 * now).  0 with *sig the signal that stopped it (0 for a syscall stop) and
 * r its registers, or -errno with a message.
 */
static int next_stop(struct excursion *x, const char *what, int stepping,
		     int *sig, struct arch_regs *r, struct inject_err *err)
{
	pid_t tid = x->b->tid;
	int status, q;

	for (;;) {
		if ((q = stepping ? ptr_syscall(tid) : ptr_cont(tid, 0)) ||
		    (q = ptr_wait(tid, &status)))
			return inject_fail(err, q, "%s in %d: %s", what, (int)x->pid,
					   strerror(-q));
		if (!WIFSTOPPED(status))
			return inject_fail(err, -ESRCH, "%s in %d: the process ended "
					   "(status 0x%x)", what, (int)x->pid, status);
		if (ptr_is_event_stop(status))
			continue;
		*sig = ptr_is_syscall_stop(status) ? 0 : WSTOPSIG(status);
		if (*sig == SIGSTOP || *sig == SIGTSTP || *sig == SIGTTIN ||
		    *sig == SIGTTOU)
			continue;
		r->len = sizeof(r->u);
		if ((q = ptr_getregset(tid, NT_PRSTATUS, r->u.bytes, &r->len)))
			return inject_fail(err, q, "%s in %d: read registers: %s", what,
					   (int)x->pid, strerror(-q));
		return 0;
	}
}

/*
 * Until the call is over: with a marker, the marker's stop right after our
 * sigreturn (the thread is itself again); without, the entry of that
 * sigreturn.  Any other signal is the call faulting.
 */
static int run_call(struct excursion *x, const char *what, struct inject_err *err)
{
	struct arch_regs r;
	int q, sig = 0;

	for (;;) {
		if ((q = next_stop(x, what, !x->marker, &sig, &r, err)))
			return q;
		if (!x->marker && !sig && arch_at_sigreturn(&r, x->gadget))
			return 0;
		if (x->marker && sig == x->marker) {
			if (arch_restored(&r, &x->b->regs)) {
				x->armed = 0;
				return 0;
			}
			continue;	/* not ours: dropped */
		}
		if (sig)
			return inject_fail(err, -EFAULT, "%s in %d: stopped by signal "
					   "%d", what, (int)x->pid, sig);
	}
}

int inject_exc_call(struct excursion *x, const char *what, raddr_t fn,
		    const uint64_t *args, int nargs, struct inject_err *err)
{
	struct arch_regs r = x->b->regs;
	int q;

	arch_prepare_call(&r, fn, args, nargs, x->frame);
	if ((q = ptr_setregset(x->b->tid, NT_PRSTATUS, r.u.bytes, r.len)))
		return inject_fail(err, q, "%s in %d: set registers: %s", what,
				   (int)x->pid, strerror(-q));
	/* From here on the thread completes through the frame, with or
	 * without us.  The frame holds the original mask for sigreturn. */
	x->armed = 1;
	if ((q = ptr_setsigmask(x->b->tid, ~0ULL)) ||
	    (x->marker && (q = ptr_signal(x->pid, x->b->tid, x->marker))))
		return inject_fail(err, q, "%s in %d: block signals: %s", what,
				   (int)x->pid, strerror(-q));
	return run_call(x, what, err);
}

/*
 * Give the thread back.  After the marker: it is itself already, detach
 * (the marker is dropped).  At our sigreturn's entry: detaching lets it run.
 * Anywhere else in a call (it faulted): send it to the sigreturn.  Never
 * armed: nothing of it was changed.
 */
void inject_exc_end(struct excursion *x)
{
	struct arch_regs r;

	if (x->armed) {
		r.len = sizeof(r.u);
		if (ptr_getregset(x->b->tid, NT_PRSTATUS, r.u.bytes, &r.len) == 0 &&
		    !arch_at_sigreturn(&r, x->gadget)) {
			arch_prepare_sigreturn(&r, x->gadget, x->frame);
			if (ptr_setregset(x->b->tid, NT_PRSTATUS, r.u.bytes, r.len)) {
				/* the process is gone */
			}
		}
	}
	inject_release(x->b);
}
