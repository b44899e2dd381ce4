/*
 * internal.h - what the files of inject/ share: the borrowed thread and the
 * self-completing remote calls (remote.c).
 */
#ifndef COVINJECT_INJECT_INTERNAL_H
#define COVINJECT_INJECT_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>
#include "arch.h"
#include "inject.h"

#define XSTATE_BYTES	(32 * 1024)

/* One thread of the target, stopped by us, and what we saved of it. */
struct borrowed {
	pid_t tid;
	long syscall;		/* the syscall it was parked in, or -1 */
	struct arch_regs regs;
	unsigned char xstate[XSTATE_BYTES];
	size_t xstate_len;
	uint64_t sigmask;
	int seized;
	int64_t t_stop;
};

/* borrow.c */
int inject_borrow(pid_t pid, struct borrowed *b, struct inject_err *err)
	__attribute__((warn_unused_result));
void inject_release(struct borrowed *b);
int64_t inject_now_ns(void);

/* remote.c: calls that finish and restore the thread even if we die. */
struct excursion {
	pid_t pid;
	struct borrowed *b;
	raddr_t gadget;		/* the C library's sigreturn code */
	raddr_t frame;		/* our signal frame; sp for every call */
	raddr_t strings;	/* scratch for call arguments */
	size_t strings_len;
	int armed;		/* registers point into a call or its sigreturn */
	int marker;		/* signal that marks a call's end, or 0 */
};

int inject_exc_begin(struct excursion *x, pid_t pid, struct borrowed *b,
		     raddr_t gadget, size_t strings_len, struct inject_err *err)
	__attribute__((warn_unused_result));
int inject_exc_call(struct excursion *x, const char *what, raddr_t fn,
		    const uint64_t *args, int nargs, struct inject_err *err)
	__attribute__((warn_unused_result));
void inject_exc_end(struct excursion *x);

int inject_write(pid_t pid, raddr_t addr, const void *buf, size_t len)
	__attribute__((warn_unused_result));

#endif
