/*
 * ptrace.c - the only file that calls ptrace(2).  Thin verbs, each returning
 * 0 or -errno; callers turn failures into messages.
 *
 * PTRACE_SEIZE (Linux 3.4) attaches without stopping the thread and without
 * the SIGSTOP that PTRACE_ATTACH sends; PTRACE_INTERRUPT then stops it with a
 * PTRACE_EVENT_STOP that the tracee never sees as a signal.
 */
#include <errno.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ptrace.h"

static int ret(long r)
{
	return r < 0 ? -errno : 0;
}

/* PTRACE_O_TRACESYSGOOD: syscall stops report SIGTRAP | 0x80. */
int ptr_seize(pid_t tid)
{
	return ret(ptrace(PTRACE_SEIZE, tid, 0, (void *)PTRACE_O_TRACESYSGOOD));
}

/* Resume until the next syscall entry or exit. */
int ptr_syscall(pid_t tid)
{
	return ret(ptrace(PTRACE_SYSCALL, tid, 0, 0));
}

int ptr_is_syscall_stop(int status)
{
	return WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80);
}

int ptr_interrupt(pid_t tid)
{
	return ret(ptrace(PTRACE_INTERRUPT, tid, 0, 0));
}

int ptr_cont(pid_t tid, int sig)
{
	return ret(ptrace(PTRACE_CONT, tid, 0, (void *)(long)sig));
}

/* Queue sig for one thread (tgkill); with it blocked there, it stays pending. */
int ptr_signal(pid_t pid, pid_t tid, int sig)
{
	return ret(syscall(SYS_tgkill, pid, tid, sig));
}

int ptr_detach(pid_t tid)
{
	return ret(ptrace(PTRACE_DETACH, tid, 0, 0));
}

int ptr_getregset(pid_t tid, unsigned note, void *buf, size_t *len)
{
	struct iovec iov = { buf, *len };

	if (ptrace(PTRACE_GETREGSET, tid, (void *)(long)note, &iov) < 0)
		return -errno;
	*len = iov.iov_len;
	return 0;
}

int ptr_setregset(pid_t tid, unsigned note, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return ret(ptrace(PTRACE_SETREGSET, tid, (void *)(long)note, &iov));
}

int ptr_getsigmask(pid_t tid, uint64_t *mask)
{
	return ret(ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(*mask), mask));
}

int ptr_setsigmask(pid_t tid, uint64_t mask)
{
	return ret(ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask));
}

/* Wait for the next stop of tid.  *status as from waitpid. */
int ptr_wait(pid_t tid, int *status)
{
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL);

		if (r == tid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* PTRACE_EVENT_STOP: the stop that PTRACE_INTERRUPT (or a group stop) made. */
int ptr_is_event_stop(int status)
{
	return WIFSTOPPED(status) && (status >> 16) == PTRACE_EVENT_STOP;
}
