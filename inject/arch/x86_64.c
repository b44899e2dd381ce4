/*
 * x86_64.c - register knowledge for x86_64 Linux.
 *
 * NT_PRSTATUS on x86_64 is struct user_regs_struct (<sys/user.h>).  The
 * extended state (x87, SSE, AVX, AVX-512) comes from NT_X86_XSTATE, the
 * XSAVE area; restoring only NT_PRFPREG would lose the upper ymm/zmm halves.
 */
#include <sys/user.h>
#include <elf.h>
#include <errno.h>
#include <sys/syscall.h>
#include "../arch.h"

_Static_assert(sizeof(struct user_regs_struct) <= ARCH_REGS_BYTES,
	       "ARCH_REGS_BYTES too small for x86_64");

#define R(r) ((struct user_regs_struct *)(r)->u.bytes)
#define CR(r) ((const struct user_regs_struct *)(r)->u.bytes)

/* Kernel-internal restart codes, include/linux/errno.h. */
#define ERESTARTSYS		512
#define ERESTARTNOINTR		513
#define ERESTARTNOHAND		514
#define ERESTART_RESTARTBLOCK	516

unsigned arch_xstate_note(void)
{
	return NT_X86_XSTATE;
}

raddr_t arch_ip(const struct arch_regs *r)
{
	return CR(r)->rip;
}

raddr_t arch_sp(const struct arch_regs *r)
{
	return CR(r)->rsp;
}

/*
 * SysV call: args in rdi rsi rdx rcx r8 r9, al = number of vector args for
 * variadic callees (0), rsp % 16 == 8 at entry, i.e. just after the caller
 * pushed the return address:
 *
 *	sp      -> (16-byte aligned, free)
 *	sp - 8  -> 0          return address: "ret" jumps to 0 and faults
 *	           <- rsp at entry
 */
void arch_prepare_call(struct arch_regs *r, raddr_t fn, const uint64_t *args,
		       int nargs, raddr_t sp, raddr_t *ret_slot)
{
	struct user_regs_struct *u = R(r);
	unsigned long long *argreg[6] = { &u->rdi, &u->rsi, &u->rdx,
					  &u->rcx, &u->r8, &u->r9 };

	for (int i = 0; i < nargs && i < 6; i++)
		*argreg[i] = args[i];
	u->rax = 0;
	u->rip = fn;
	u->rsp = (sp & ~15ULL) - 8;
	/* orig_rax = -1: not in a syscall, so no restart on resume. */
	u->orig_rax = (unsigned long long)-1;
	*ret_slot = u->rsp;
}

uint64_t arch_call_result(const struct arch_regs *r)
{
	return CR(r)->rax;
}

long arch_interrupted_syscall(const struct arch_regs *r)
{
	long nr = (long)CR(r)->orig_rax;
	long ret = (long)CR(r)->rax;

	if (nr < 0)
		return -1;
	switch (-ret) {
	case ERESTARTSYS:
	case ERESTARTNOINTR:
	case ERESTARTNOHAND:
	case ERESTART_RESTARTBLOCK:
	case EINTR:
		return nr;
	}
	return -1;
}

int arch_idle_rank(long nr, uint64_t futex_op)
{
	switch (nr) {
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
	case SYS_select:
	case SYS_pselect6:
	case SYS_poll:
	case SYS_ppoll:
	case SYS_accept:
	case SYS_accept4:
	case SYS_wait4:
	case SYS_waitid:
	case SYS_pause:
	case SYS_rt_sigtimedwait:
	case SYS_rt_sigsuspend:
		return 4;
	case SYS_read:
	case SYS_recvfrom:
	case SYS_recvmsg:
		return 3;
	case SYS_futex:
		/* FUTEX_WAIT (0) or FUTEX_WAIT_BITSET (9), private or not */
		return ((futex_op & 127) == 0 || (futex_op & 127) == 9) ? 2 : 0;
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
		return 1;
	}
	return 0;
}
