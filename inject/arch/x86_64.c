/*
 * x86_64.c - register and signal-frame knowledge for x86_64 Linux.
 *
 * NT_PRSTATUS on x86_64 is struct user_regs_struct (<sys/user.h>).  The
 * extended state (x87, SSE, AVX, AVX-512, AMX) comes from NT_X86_XSTATE, the
 * XSAVE area; restoring only NT_PRFPREG would lose the upper ymm/zmm halves.
 *
 * The frame we build is the kernel's struct rt_sigframe
 * (arch/x86/include/asm/sigframe.h), read back by rt_sigreturn
 * (arch/x86/kernel/signal_64.c):
 *
 *	sp ->	pretcode	8	the sigreturn code in libc (__restore_rt)
 *		ucontext	304	flags, link, stack, sigcontext, sigmask
 *		siginfo		128	unused by rt_sigreturn
 *	...
 *	xstate_at (64-aligned): the XSAVE area, sw_reserved bytes in the
 *		signal-frame format (FP_XSTATE_MAGIC1...), FP_XSTATE_MAGIC2 after it
 */
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/user.h>
#include <time.h>
#include "../arch.h"

_Static_assert(sizeof(struct user_regs_struct) <= ARCH_REGS_BYTES,
	       "ARCH_REGS_BYTES too small for x86_64");
/* glibc's ucontext_t starts with the kernel's struct ucontext. */
_Static_assert(offsetof(ucontext_t, uc_mcontext) == 40, "ucontext layout");
_Static_assert(offsetof(ucontext_t, uc_sigmask) == 296, "ucontext layout");

#define R(r) ((struct user_regs_struct *)(r)->u.bytes)
#define CR(r) ((const struct user_regs_struct *)(r)->u.bytes)

/* Kernel-internal restart codes, include/linux/errno.h. */
#define ERESTARTSYS		512
#define ERESTARTNOINTR		513
#define ERESTARTNOHAND		514
#define ERESTART_RESTARTBLOCK	516

/* arch/x86/include/uapi/asm/ucontext.h and sigcontext.h */
#define UC_FP_XSTATE		0x1
#define UC_SIGCONTEXT_SS	0x2
#define UC_STRICT_RESTORE_SS	0x4
#define FP_XSTATE_MAGIC1	0x46505853U
#define FP_XSTATE_MAGIC2	0x46505845U
#define SW_BYTES_OFFSET		464	/* sw_reserved in the FXSAVE area */
#define KERNEL_UCONTEXT_BYTES	304
#define SIGINFO_BYTES		128

/* mov $__NR_rt_sigreturn, %rax; syscall  -- glibc's __restore_rt */
static const unsigned char sigreturn_code[] = {
	0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05
};

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

void arch_syscall_args(const struct arch_regs *r, uint64_t args[6])
{
	const struct user_regs_struct *u = CR(r);

	args[0] = u->rdi;
	args[1] = u->rsi;
	args[2] = u->rdx;
	args[3] = u->r10;
	args[4] = u->r8;
	args[5] = u->r9;
}

int arch_restart_lost(const struct arch_regs *r)
{
	long ret = (long)CR(r)->rax;

	return (long)CR(r)->orig_rax >= 0 && (-ret == ERESTART_RESTARTBLOCK || -ret == EINTR);
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

int arch_idle_rank(long nr, const uint64_t *args)
{
	switch (nr) {
	case SYS_select:	/* these restart with -ERESTARTNOHAND */
	case SYS_pselect6:
	case SYS_ppoll:
	case SYS_accept:
	case SYS_accept4:
	case SYS_wait4:
	case SYS_waitid:
	case SYS_pause:
	case SYS_rt_sigsuspend:
		return 4;
	case SYS_clock_nanosleep:	/* time.sleep on 3.11+: absolute */
		return (args[1] & TIMER_ABSTIME) ? 4 : ARCH_RANK_LOSSY;
	case SYS_poll:
		return (int)args[2] < 0 ? 4 : ARCH_RANK_LOSSY;
	case SYS_read:
	case SYS_recvfrom:
	case SYS_recvmsg:
		return 3;
	case SYS_futex:
		/* FUTEX_WAIT (0) or FUTEX_WAIT_BITSET (9), private or not;
		 * with a timeout its restart is lost */
		if ((args[1] & 127) != 0 && (args[1] & 127) != 9)
			return 0;
		return args[3] ? ARCH_RANK_LOSSY : 2;
	case SYS_nanosleep:
	case SYS_restart_syscall:	/* a sleep or poll resumed after a stop */
	case SYS_rt_sigtimedwait:
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
		return ARCH_RANK_LOSSY;
	}
	return 0;
}

const unsigned char *arch_sigreturn_code(size_t *len)
{
	*len = sizeof(sigreturn_code);
	return sigreturn_code;
}

size_t arch_frame_bytes(void)
{
	return 8 + KERNEL_UCONTEXT_BYTES + SIGINFO_BYTES;
}

/*
 * What the kernel itself does when a stop in a syscall ends without a
 * handler (arch_do_signal_or_restart): back up to the syscall instruction
 * and reload its number, or go through restart_syscall for calls whose
 * remaining time lives in the task's restart_block (nanosleep, poll...).
 */
static void restart_regs(struct user_regs_struct *u)
{
	if ((long)u->orig_rax < 0)
		return;
	switch (-(long)u->rax) {
	case ERESTARTSYS:
	case ERESTARTNOINTR:
	case ERESTARTNOHAND:
		u->rax = u->orig_rax;
		u->rip -= 2;
		break;
	case ERESTART_RESTARTBLOCK:
		u->rax = SYS_restart_syscall;
		u->rip -= 2;
		break;
	}
}

void arch_build_frame(unsigned char *buf, const struct arch_regs *saved,
		      uint64_t sigmask, raddr_t gadget, raddr_t xstate_at,
		      int have_xstate)
{
	struct user_regs_struct u = *CR(saved);
	ucontext_t uc;
	greg_t *g = uc.uc_mcontext.gregs;
	uint64_t pretcode = gadget;

	restart_regs(&u);
	memset(&uc, 0, sizeof(uc));
	uc.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS |
		      (have_xstate ? UC_FP_XSTATE : 0);
	/* An invalid mode: restore_altstack() fails with EINVAL, which
	 * rt_sigreturn ignores, so the thread's sigaltstack stays as it is. */
	uc.uc_stack.ss_flags = 3;
	g[REG_R8] = u.r8;
	g[REG_R9] = u.r9;
	g[REG_R10] = u.r10;
	g[REG_R11] = u.r11;
	g[REG_R12] = u.r12;
	g[REG_R13] = u.r13;
	g[REG_R14] = u.r14;
	g[REG_R15] = u.r15;
	g[REG_RDI] = u.rdi;
	g[REG_RSI] = u.rsi;
	g[REG_RBP] = u.rbp;
	g[REG_RBX] = u.rbx;
	g[REG_RDX] = u.rdx;
	g[REG_RAX] = u.rax;
	g[REG_RCX] = u.rcx;
	g[REG_RSP] = u.rsp;
	g[REG_RIP] = u.rip;
	g[REG_EFL] = u.eflags;
	/* cs, gs, fs, ss as four 16-bit fields */
	g[REG_CSGSFS] = (u.cs & 0xffff) | (u.ss & 0xffff) << 48;
	uc.uc_mcontext.fpregs = (fpregset_t)(uintptr_t)xstate_at;
	memcpy(&uc.uc_sigmask, &sigmask, sizeof(sigmask));
	memset(buf, 0, arch_frame_bytes());
	memcpy(buf, &pretcode, 8);
	memcpy(buf + 8, &uc, KERNEL_UCONTEXT_BYTES);
}

/*
 * PTRACE_GETREGSET(NT_X86_XSTATE) puts XCR0 in the first word of
 * sw_reserved (for debuggers); a signal frame wants struct _fpx_sw_bytes
 * there and FP_XSTATE_MAGIC2 right after the area (fpu__restore_sig checks
 * both, and restores only the legacy part otherwise).
 */
size_t arch_fix_xstate(unsigned char *buf, size_t len)
{
	uint64_t xcr0;
	uint32_t magic1 = FP_XSTATE_MAGIC1, magic2 = FP_XSTATE_MAGIC2;
	uint32_t ext = (uint32_t)len + 4, size = (uint32_t)len;

	if (len < 576)
		return 0;	/* no XSAVE header: legacy FXSAVE only */
	memcpy(&xcr0, buf + SW_BYTES_OFFSET, 8);
	memset(buf + SW_BYTES_OFFSET, 0, 48);
	memcpy(buf + SW_BYTES_OFFSET, &magic1, 4);
	memcpy(buf + SW_BYTES_OFFSET + 4, &ext, 4);
	memcpy(buf + SW_BYTES_OFFSET + 8, &xcr0, 8);
	memcpy(buf + SW_BYTES_OFFSET + 16, &size, 4);
	memcpy(buf + len, &magic2, 4);
	return len + 4;
}

/*
 * SysV call: args in rdi rsi rdx rcx r8 r9, al = number of vector args for
 * variadic callees (0), rsp % 16 == 8 at entry with the return address at
 * [rsp]: here the frame's pretcode.
 */
void arch_prepare_call(struct arch_regs *r, raddr_t fn, const uint64_t *args,
		       int nargs, raddr_t sp)
{
	struct user_regs_struct *u = R(r);
	unsigned long long *argreg[6] = { &u->rdi, &u->rsi, &u->rdx,
					  &u->rcx, &u->r8, &u->r9 };

	for (int i = 0; i < nargs && i < 6; i++)
		*argreg[i] = args[i];
	u->rax = 0;
	u->rip = fn;
	u->rsp = sp;
	/* orig_rax = -1: no restart, and at a syscall-entry stop, no syscall. */
	u->orig_rax = (unsigned long long)-1;
}

void arch_prepare_sigreturn(struct arch_regs *r, raddr_t gadget, raddr_t sp)
{
	struct user_regs_struct *u = R(r);

	u->rip = gadget;
	u->rsp = sp + 8;	/* as if the callee had returned */
	u->orig_rax = (unsigned long long)-1;
}

int arch_at_sigreturn(const struct arch_regs *r, raddr_t gadget)
{
	return CR(r)->orig_rax == SYS_rt_sigreturn &&
	       CR(r)->rip == gadget + sizeof(sigreturn_code);
}

int arch_restored(const struct arch_regs *r, const struct arch_regs *saved)
{
	struct user_regs_struct u = *CR(saved);

	restart_regs(&u);
	return CR(r)->rip == u.rip && CR(r)->rsp == u.rsp;
}
