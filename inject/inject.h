/*
 * inject.h - the one interface cli/ uses to act on another process.
 *
 * Every function returns 0 or -errno and, on failure, leaves a message in
 * the caller's buffer ("what failed: why"); the first message written wins.
 * Nothing here prints: progress goes to the log callback, if any.
 */
#ifndef COVINJECT_INJECT_H
#define COVINJECT_INJECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "arch.h"

struct inject_log {
	void (*fn)(void *arg, const char *line);
	void *arg;
};

struct inject_err {
	char msg[512];
	const struct inject_log *log;
};

struct inject_stats {
	pid_t tid;		/* the thread we borrowed */
	long syscall;		/* the syscall it was parked in, or -1 */
	int64_t stopped_ns;	/* from its stop to its release */
	int loaded;		/* 1 if this call dlopen()ed the payload */
};

/*
 * Make pid run cov_start(config) from the payload library at payload_path,
 * loading it first (memfd + dlopen) unless it is mapped already.  One
 * thread is borrowed for a few remote calls and restored exactly.
 */
int inject_start(pid_t pid, const char *payload_path, const char *config,
		 struct inject_stats *st, struct inject_err *err)
	__attribute__((warn_unused_result));

/* Where the payload's exported symbol sym lives in pid: -ENOENT if not loaded. */
int inject_payload_symbol(pid_t pid, const char *sym, raddr_t *addr,
			  struct inject_err *err)
	__attribute__((warn_unused_result));

/* Copy len bytes at addr in pid (process_vm_readv; the target runs on). */
int inject_read(pid_t pid, raddr_t addr, void *buf, size_t len)
	__attribute__((warn_unused_result));

/* A copy of pid's fd (pidfd_getfd; before Linux 5.6 /proc/PID/fd/N opened
 * with flags): ours to close, or -errno. */
int inject_take_fd(pid_t pid, int fd, int flags);

/* The first fd of pid whose /proc link text matches, or -ENOENT/-errno. */
int inject_find_fd(pid_t pid, int (*match)(const char *link));

/* This kernel lets us hand files to another process (pidfd_getfd, 5.6). */
int inject_can_pass_fds(void);

/* Send fd, with msg as the message, over the payload's socket remote_sock
 * of pid (fdpass.c); the target is not stopped. */
int inject_send_fd(pid_t pid, int remote_sock, int fd, const char *msg,
		   struct inject_err *err) __attribute__((warn_unused_result));

/* Python major/minor of pid from its mapped interpreter, and whether it is
 * a free-threaded build (python3.14t, libpython3.14t.so): 0 or -ENOENT. */
int inject_python_version(pid_t pid, int *major, int *minor, int *freethreaded,
			  char *image, size_t imagelen)
	__attribute__((warn_unused_result));

int inject_fail(struct inject_err *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void inject_logf(struct inject_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
