/*
 * arch.h - the short list of hooks a CPU architecture provides to the
 * injector.  Everything that knows register names lives in arch/<arch>.c;
 * the rest of inject/ treats register sets as opaque blobs of
 * ARCH_REGS_BYTES read and written with PTRACE_GETREGSET(NT_PRSTATUS).
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
 * Prepare r (a copy of the saved set) to call fn(args[0..nargs-1]) with
 * the stack top at sp (16-byte aligned, below the red zone) so that the
 * function returns to address 0, where it faults and the tracer sees a
 * SIGSEGV stop.  If the return address must live in memory, *ret_slot is
 * set to where a zero word must be written; otherwise it is set to 0.
 * The syscall-restart state is cleared, so the kernel does not "restart"
 * into the call when the thread was stopped inside a system call.
 */
void arch_prepare_call(struct arch_regs *r, raddr_t fn, const uint64_t *args,
		       int nargs, raddr_t sp, raddr_t *ret_slot);

uint64_t arch_call_result(const struct arch_regs *r);

/*
 * The system call the thread was stopped in, or -1: true when the stop
 * interrupted a syscall that the kernel will restart (or that returns
 * EINTR) once the registers are restored.
 */
long arch_interrupted_syscall(const struct arch_regs *r);

/*
 * How good a place to borrow a thread the syscall nr (as in
 * /proc/PID/task/TID/syscall) is: 0 not idle, higher is better.  A thread
 * parked in such a call holds no libc or loader lock and has released the
 * GIL.  epoll waits rank low: they return EINTR to the program after any
 * ptrace stop, where the others restart transparently.
 */
int arch_idle_rank(long nr, uint64_t arg1);

/* Bytes below sp that the ABI lets leaf code use without moving sp. */
#define ARCH_RED_ZONE 128

#endif
