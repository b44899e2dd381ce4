/*
 * needs.c - what the target's own root must give the collector, checked
 * from outside before anything is touched: a procfs (the payload is
 * loaded from /proc/self/fd/N, a memfd) and libsqlite3.so.0 (data files
 * are written with the target's own SQLite).  /proc/PID/root is the
 * kernel's view into that root, whatever its mount namespace.
 *
 * The library check is a search of the places the dynamic loader looks
 * (ld.so(8)): the directories of the libraries the process has mapped
 * (its interpreter's RPATH is among them), LD_LIBRARY_PATH, ld.so.conf's
 * directories and the default ones.  The payload's own dlopen remains the
 * last word; this only refuses, untouched, a process that clearly lacks it.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include "cli.h"
#include "../inject/maps.h"

#define PROC_SUPER_MAGIC 0x9fa0
#define SQLITE "libsqlite3.so.0"

static const char *const default_dirs[] = {
	"/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib", NULL
};

/* dir (the target's name) holds libsqlite3.so.0. */
static int has_lib(pid_t pid, const char *dir, size_t n)
{
	char fn[PATH_MAX];
	struct stat st;

	if (!n || dir[0] != '/' ||
	    (size_t)snprintf(fn, sizeof(fn), "/proc/%d/root%.*s/" SQLITE, (int)pid,
			     (int)n, dir) >= sizeof(fn))
		return 0;
	/* stat, not access: access(2) drops a non-root caller's capabilities,
	 * and CAP_SYS_PTRACE is what opens /proc/PID/root to us */
	return stat(fn, &st) == 0 && S_ISREG(st.st_mode);
}

/* A colon- or newline-separated list of directories. */
static int in_list(pid_t pid, const char *list, const char *seps)
{
	for (const char *p = list; p && *p; p += strcspn(p, seps), p += !!*p)
		if (has_lib(pid, p, strcspn(p, seps)))
			return 1;
	return 0;
}

static int sqlite_beside(const struct map_entry *e, void *arg)
{
	pid_t pid = *(pid_t *)arg;
	const char *slash = strrchr(e->path, '/');

	if (e->path[0] != '/' || !slash)
		return 0;
	return strstr(e->path, "/libsqlite3.so") != NULL ||
	       has_lib(pid, e->path, (size_t)(slash - e->path));
}

/* The directories of the libraries it has mapped, or the library itself. */
static int in_mapped_dirs(pid_t pid)
{
	return maps_each(pid, sqlite_beside, &pid) > 0;
}

/* LD_LIBRARY_PATH in its environment (readable with ptrace's permission). */
static int in_ld_library_path(pid_t pid)
{
	char fn[64], env[65536];
	ssize_t n;
	int fd, yes = 0;

	snprintf(fn, sizeof(fn), "/proc/%d/environ", (int)pid);
	if ((fd = open(fn, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, env, sizeof(env) - 1);
	close(fd);
	for (ssize_t i = 0; n > 0 && i < n && !yes; i += (ssize_t)strlen(env + i) + 1) {
		env[n] = 0;
		if (!strncmp(env + i, "LD_LIBRARY_PATH=", 16))
			yes = in_list(pid, env + i + 16, ":");
	}
	return yes;
}

/* ld.so.conf: directory lines, and "include GLOB" one level down. */
static int in_ld_so_conf(pid_t pid, const char *conf, int depth)
{
	char fn[PATH_MAX], line[PATH_MAX];
	FILE *f;
	int yes = 0;

	snprintf(fn, sizeof(fn), "/proc/%d/root%s", (int)pid, conf);
	if (!(f = fopen(fn, "re")))
		return 0;
	while (!yes && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "#\n")] = 0;
		if (!strncmp(line, "include", 7) && depth == 0) {
			const char *inc = line + 7 + strspn(line + 7, " \t");
			char pat[PATH_MAX];
			glob_t g;

			snprintf(pat, sizeof(pat), "/proc/%d/root%s%s", (int)pid,
				 inc[0] == '/' ? "" : "/etc/", inc);
			if (glob(pat, 0, NULL, &g) == 0)
				for (size_t i = 0; i < g.gl_pathc && !yes; i++)
					yes = in_ld_so_conf(pid, g.gl_pathv[i] +
							    strlen(fn) - strlen(conf), 1);
			globfree(&g);
		} else {
			yes = in_list(pid, line + strspn(line, " \t"), " \t");
		}
	}
	fclose(f);
	return yes;
}

int cli_target_has_sqlite(pid_t pid)
{
	for (int i = 0; default_dirs[i]; i++)
		if (has_lib(pid, default_dirs[i], strlen(default_dirs[i])))
			return 1;
	return in_mapped_dirs(pid) || in_ld_library_path(pid) ||
	       in_ld_so_conf(pid, "/etc/ld.so.conf", 0);
}

/* A procfs mounted at /proc in its root. */
int cli_target_has_proc(pid_t pid)
{
	char fn[64];
	struct statfs sf;

	snprintf(fn, sizeof(fn), "/proc/%d/root/proc", (int)pid);
	return statfs(fn, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}
