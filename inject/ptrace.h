/* ptrace.h - the verbs of inject/ptrace.c, the one door to the other process. */
#ifndef COVINJECT_PTRACE_H
#define COVINJECT_PTRACE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define WUR __attribute__((warn_unused_result))

WUR int ptr_seize(pid_t tid);
WUR int ptr_interrupt(pid_t tid);
WUR int ptr_cont(pid_t tid, int sig);
WUR int ptr_syscall(pid_t tid);
int ptr_is_syscall_stop(int status);
int ptr_detach(pid_t tid);
WUR int ptr_signal(pid_t pid, pid_t tid, int sig);
WUR int ptr_getregset(pid_t tid, unsigned note, void *buf, size_t *len);
WUR int ptr_setregset(pid_t tid, unsigned note, const void *buf, size_t len);
WUR int ptr_getsigmask(pid_t tid, uint64_t *mask);
WUR int ptr_setsigmask(pid_t tid, uint64_t mask);
WUR int ptr_wait(pid_t tid, int *status);
int ptr_is_event_stop(int status);

#endif
