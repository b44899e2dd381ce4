/*
 * paths.c - paths are the caller's (DESIGN.md, "The caller's view is the
 * truth"): -o is a directory as the person typing the command sees it,
 * handed to the target as an open fd; a --source directory is translated
 * to the name the target itself uses for it, or refused.
 *
 * A target in a container has another root and mount namespace: the same
 * name may be another directory there, or none.  /proc/PID/root is the
 * kernel's view into it (proc_root_link), so DIR of the target is
 * /proc/PID/root/DIR here.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "../inject/inject.h"

static int same_file(const char *a, const char *b)
{
	struct stat x, y;

	return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev &&
	       x.st_ino == y.st_ino;
}

/*
 * The name pid uses for path (absolute, ours): path itself when pid sees
 * the same directory there; what follows /proc/PID/root for a path given
 * into it.  0, or -ENOENT when pid cannot name it.
 */
int cli_target_path(pid_t pid, const char *path, char *out, size_t len)
{
	char prefix[64], theirs[PATH_MAX + 64];
	size_t n = (size_t)snprintf(prefix, sizeof(prefix), "/proc/%d/root", (int)pid);

	if (!strncmp(path, prefix, n) && (path[n] == '/' || !path[n])) {
		snprintf(out, len, "%s", path[n] ? path + n : "/");
		return 0;
	}
	snprintf(theirs, sizeof(theirs), "%s%s", prefix, path);
	if (!same_file(path, theirs))
		return -ENOENT;
	snprintf(out, len, "%s", path);
	return 0;
}

/*
 * realpath, except under /proc: realpath would replace /proc/PID/root by
 * the text of that magic link ("/" for a process in another mount
 * namespace), which names our root, not its.  Such a path is kept as
 * given; the kernel follows the link itself when we open it.
 */
char *cli_real_dir(const char *given, char *out, size_t len)
{
	struct stat st;

	if (strncmp(given, "/proc/", 6))
		return len >= PATH_MAX ? realpath(given, out) : NULL;
	if (stat(given, &st))
		return NULL;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return NULL;
	}
	snprintf(out, len, "%s", given);
	return out;
}

/* The process shares our root and mount namespace: paths mean the same. */
static int same_view(pid_t pid)
{
	char a[64], b[64], fn[64];
	ssize_t x, y;

	snprintf(fn, sizeof(fn), "/proc/%d/ns/mnt", (int)pid);
	x = readlink(fn, a, sizeof(a) - 1);
	y = readlink("/proc/self/ns/mnt", b, sizeof(b) - 1);
	snprintf(fn, sizeof(fn), "/proc/%d/root", (int)pid);
	return x > 0 && x == y && !memcmp(a, b, (size_t)x) && same_file(fn, "/");
}

/*
 * -o for start, dump and stop: DIR made absolute, checked, and how it will
 * reach the target.  *by_fd: 1 hand it over open (the normal case); 0 the
 * target opens the path in dir itself (a kernel before 5.6, where the
 * target must then see it at that name).  0, or EXIT_FAIL with a message.
 */
int cli_out_dir(const char *cmd, pid_t pid, const char *given,
		const struct proc_status *st, char *dir, size_t len, int *by_fd)
{
	char real[PATH_MAX];

	if (!cli_real_dir(given, real, sizeof(real))) {
		cli_err(pid, cmd, "output directory %s: %s (create it first)", given,
			strerror(errno));
		return EXIT_FAIL;
	}
	if (!cli_dir_writable_by(real, st)) {
		cli_err(pid, cmd, "output directory %s is not writable by the process "
			"(uid %u): choose another with -o or change its permissions",
			real, (unsigned)st->euid);
		return EXIT_FAIL;
	}
	snprintf(dir, len, "%s", real);
	if ((*by_fd = inject_can_pass_fds()))
		return EXIT_OK;
	if (same_view(pid) || !cli_target_path(pid, real, dir, len))
		return EXIT_OK;
	cli_err(pid, cmd, "output directory %s: the process has another root or "
		"mount namespace and cannot see it, and this kernel cannot hand it "
		"a directory (pidfd_getfd needs Linux 5.6): give a directory it "
		"sees, as /proc/%d/root/DIR", real, (int)pid);
	return EXIT_FAIL;
}

/* Open dir here and send it to the collector's socket. */
int cli_send_dir(pid_t pid, const char *cmd, int dir_sock, const char *dir)
{
	struct inject_err err = { .msg = "" };
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	if (fd < 0) {
		cli_err(pid, cmd, "output directory %s: %s", dir, strerror(errno));
		return EXIT_FAIL;
	}
	r = inject_send_fd(pid, dir_sock, fd, dir, &err);
	close(fd);
	if (r) {
		cli_err(pid, cmd, "%s", err.msg);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
