/*
 * arch.h - the short list of hooks a CPU architecture provides to the
 * injector.  Everything that knows register names or the layout of a
 * signal frame lives in arch/<arch>.c; the rest of inject/ treats register
 * sets as opaque blobs read and written with PTRACE_GETREGSET(NT_PRSTATUS).
 */
#ifndef COVINJECT_ARCH_H
#define COVINJECT_ARCH_H

#include <stdint.h>
#include <stddef.h>

/* An address in the target process: never dereference it here. */
typedef uint64_t raddr_t;

#define ARCH_REGS_BYTES 512	/* >= any architecture's NT_PRSTATUS set */

struct arch_regs {
	union {
		uint64_t words[ARCH_REGS_BYTES / 8];
		unsigned char bytes[ARCH_REGS_BYTES];
	} u;
	size_t len;		/* what the kernel filled in */
};

/* The regset note that holds vector/extended state (xmm/ymm/zmm...). */
unsigned arch_xstate_note(void);

raddr_t arch_ip(const struct arch_regs *r);
raddr_t arch_sp(const struct arch_regs *r);

/*
 * How good a place to borrow a thread the syscall nr with arguments
 * args[0..5] (as in /proc/PID/task/TID/syscall) is: 0 not idle, higher is
 * better.  A thread parked in such a call holds no libc or loader lock and
 * has released the GIL.  Rank 1 (ARCH_RANK_LOSSY): calls that come back to
 * the program with EINTR after our visit, where the others restart
 * transparently: epoll waits, after any ptrace stop; a relative sleep, a
 * poll or a futex wait with a timeout, because their remaining time lives
 * in the task's restart_block, which the sigreturn ending each remote call
 * resets (the kernel's restore_sigcontext does, as for a signal handler).
 */
#define ARCH_RANK_LOSSY 1
int arch_idle_rank(long nr, const uint64_t *args);

/*
 * The system call the thread was stopped in, or -1: true when the stop
 * interrupted a syscall that the kernel will restart (or that returns
 * EINTR) once the registers are restored.
 */
long arch_interrupted_syscall(const struct arch_regs *r);

/* That syscall's arguments, as arch_idle_rank takes them. */
void arch_syscall_args(const struct arch_regs *r, uint64_t args[6]);

/* 1 if that syscall returns EINTR to the program once a remote call has
 * run in the thread (see ARCH_RANK_LOSSY), from what the stop left in the
 * registers, which is exact where the rank is a guess. */
int arch_restart_lost(const struct arch_regs *r);

/* Bytes below sp that the ABI lets leaf code use without moving sp. */
#define ARCH_RED_ZONE 128

/*
 * Self-completing calls.  Every remote call returns into the C library's
 * own sigreturn code (found by its bytes) with a signal frame we built on
 * the thread's stack: if covinject dies at any instant, the thread still
 * finishes the call and the kernel puts back its registers, vector state
 * and signal mask, restarting an interrupted syscall as it would after a
 * signal handler.  While we trace, we stop at that sigreturn's syscall
 * entry and chain the next call instead.
 */
const unsigned char *arch_sigreturn_code(size_t *len);
size_t arch_frame_bytes(void);
#define ARCH_FRAME_ALIGN 16
#define ARCH_FRAME_MISALIGN 8	/* frame address % ARCH_FRAME_ALIGN */
#define ARCH_XSTATE_ALIGN 64

/*
 * Fill buf (arch_frame_bytes()) with a frame that, placed in the target at
 * the address passed to arch_prepare_call as sp, returns to gadget and
 * makes the kernel restore saved, sigmask, and the vector state stored at
 * xstate_at (written by the caller from arch_fix_xstate's output).
 */
void arch_build_frame(unsigned char *buf, const struct arch_regs *saved,
		      uint64_t sigmask, raddr_t gadget, raddr_t xstate_at,
		      int have_xstate);

/*
 * Turn the ptrace xstate (as read) into the signal-frame format in place;
 * buf has room for len + 64 bytes.  Returns the length to write, or 0 if
 * the state cannot be used in a frame (then only legacy state is restored).
 */
size_t arch_fix_xstate(unsigned char *buf, size_t len);

/*
 * Prepare r (a copy of the saved set) to call fn(args[0..nargs-1]) with
 * the frame at sp: the callee returns into the frame's return address.
 * The syscall-restart state is cleared, so the kernel does not "restart"
 * into the call when the thread was stopped inside (or entering) a syscall.
 */
void arch_prepare_call(struct arch_regs *r, raddr_t fn, const uint64_t *args,
		       int nargs, raddr_t sp);

/* Prepare r to go straight to the sigreturn (abandon the excursion). */
void arch_prepare_sigreturn(struct arch_regs *r, raddr_t gadget, raddr_t sp);

/* At a syscall-entry stop: is it our frame's sigreturn? */
int arch_at_sigreturn(const struct arch_regs *r, raddr_t gadget);

/* After our frame's sigreturn: are r the saved registers, as restored? */
int arch_restored(const struct arch_regs *r, const struct arch_regs *saved);

#endif
