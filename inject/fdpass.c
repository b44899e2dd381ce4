/*
 * fdpass.c - the target's file descriptors: take a copy of one, find one,
 * and hand one of ours to it (the output directory, opened in covinject's
 * own mount namespace, so that -o names what the caller sees even when
 * the target has another root).
 *
 * /proc/PID/fd is mode 0500 of the target's user and proc_fd_permission
 * checks that mode: a caller of another uid with only CAP_SYS_PTRACE can
 * neither list it nor open through it.  pidfd_getfd needs exactly ptrace's
 * permission, so it comes first; /proc/PID/fd serves kernels before 5.6.
 *
 * The payload publishes one end of a socketpair it made (cov_state.h,
 * dir_sock); we take a copy of that end with pidfd_getfd (Linux 5.6),
 * which the kernel allows exactly when ptrace would
 * (PTRACE_MODE_ATTACH_REALCREDS), and send the file over it with
 * SCM_RIGHTS.  The target is not stopped; nothing of it changes but the
 * message queued on its own socket.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "inject.h"

/* The same number on every architecture (the unified table from 424 on). */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static int pidfd_getfd_of(pid_t pid, int fd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), r;

	if (pidfd < 0)
		return -errno;
	r = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	r = r < 0 ? -errno : r;
	close(pidfd);
	return r;
}

int inject_take_fd(pid_t pid, int fd, int flags)
{
	char fn[64];
	int r = pidfd_getfd_of(pid, fd);

	if (r != -ENOSYS)
		return r;
	snprintf(fn, sizeof(fn), "/proc/%d/fd/%d", (int)pid, fd);
	if ((r = open(fn, flags | O_CLOEXEC)) < 0)
		return -errno;
	return r;	/* the caller's to close */
}

/* What our copy of one of its fds is: "/memfd:NAME (deleted)", a path. */
static int link_of(int ours, char *buf, size_t len)
{
	char fn[64];
	ssize_t n;

	snprintf(fn, sizeof(fn), "/proc/self/fd/%d", ours);
	n = readlink(fn, buf, len - 1);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* The size of its fd table (FDSize in /proc/PID/status, world-readable). */
static int fd_table_size(pid_t pid)
{
	char fn[64], buf[4096], *p;
	ssize_t n;
	int fd = -1;

	snprintf(fn, sizeof(fn), "/proc/%d/status", (int)pid);
	if ((fd = open(fn, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	if (!(p = strstr(buf, "\nFDSize:")))
		return -ENOENT;
	n = atoi(p + 8);
	return n > 0 && n <= 1 << 20 ? (int)n : -ERANGE;
}

/* Without /proc/PID/fd: every slot, through pidfd_getfd. */
static int scan_fds(pid_t pid, int (*match)(const char *link))
{
	char link[256];
	int size = fd_table_size(pid);

	for (int fd = 0; fd < size; fd++) {
		int ours = pidfd_getfd_of(pid, fd), yes;

		if (ours < 0)
			continue;
		yes = link_of(ours, link, sizeof(link)) == 0 && match(link);
		close(ours);
		if (yes)
			return fd;
	}
	return -ENOENT;
}

int inject_find_fd(pid_t pid, int (*match)(const char *link))
{
	char dir[64], fn[340], link[256];
	struct dirent *d;
	DIR *dp;
	int fd = -ENOENT;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if (!(dp = opendir(dir)))
		return errno == EACCES ? scan_fds(pid, match) : -errno;
	while (fd < 0 && (d = readdir(dp))) {
		ssize_t n;

		snprintf(fn, sizeof(fn), "%s/%s", dir, d->d_name);
		n = readlink(fn, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (match(link))
			fd = atoi(d->d_name);
	}
	closedir(dp);
	return fd;
}

int inject_can_pass_fds(void)
{
	int fd = pidfd_getfd_of(getpid(), STDERR_FILENO);

	if (fd >= 0)
		close(fd);
	return fd != -ENOSYS;
}

/*
 * The socket is the payload's only if it is a SOCK_SEQPACKET unix socket
 * made by pid itself (SO_PEERCRED of a socketpair end names its maker): a
 * block of another program's, or one it connected elsewhere, never gets
 * our file.
 */
static int check_socket(int sock, pid_t pid)
{
	struct ucred cred;
	socklen_t len = sizeof(int);
	int v = 0;

	if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &v, &len) || v != AF_UNIX)
		return -ENOTSOCK;
	len = sizeof(int);
	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &v, &len) || v != SOCK_SEQPACKET)
		return -EPROTOTYPE;
	len = sizeof(cred);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid != pid)
		return -EPERM;
	return 0;
}

int inject_send_fd(pid_t pid, int remote_sock, int fd, const char *msg,
		   struct inject_err *err)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)msg, strlen(msg) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;
	int sock, r;

	memset(ctl, 0, sizeof(ctl));
	if ((sock = pidfd_getfd_of(pid, remote_sock)) < 0)
		return inject_fail(err, sock, "take the collector's socket (fd %d) of %d: "
				   "%s", remote_sock, (int)pid, strerror(-sock));
	if ((r = check_socket(sock, pid))) {
		close(sock);
		return inject_fail(err, r, "fd %d of %d is not the collector's socket",
				   remote_sock, (int)pid);
	}
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	r = sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)iov.iov_len ?
	    0 : -errno;
	close(sock);
	if (r)
		return inject_fail(err, r, "send the directory to %d: %s", (int)pid,
				   strerror(-r));
	return 0;
}
