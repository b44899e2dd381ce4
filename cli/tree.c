/*
 * tree.c - run a command on one process, or with --tree on it and every
 * descendant, under the per-process lock.  Descendants come from the
 * parent pid field of /proc/PID/stat, so no kernel option is needed.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

#define MAX_TREE 4096

static pid_t parent_of(pid_t pid)
{
	char fn[64], buf[1024];
	ssize_t n;
	pid_t pp = 0;
	int fd;

	snprintf(fn, sizeof(fn), "/proc/%d/stat", (int)pid);
	if ((fd = open(fn, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return cli_stat_ppid(buf, &pp) ? 0 : pp;
}

/* root, then its descendants breadth first; returns how many. */
static int tree(pid_t root, pid_t *out, int max)
{
	static pid_t all[MAX_TREE * 4], par[MAX_TREE * 4];
	struct dirent *d;
	int n = 0, nall = 0;
	DIR *dir = opendir("/proc");

	out[n++] = root;
	while (dir && (d = readdir(dir)) && nall < (int)(sizeof(all) / sizeof(all[0]))) {
		if (!isdigit((unsigned char)d->d_name[0]))
			continue;
		all[nall] = atoi(d->d_name);
		par[nall] = parent_of(all[nall]);
		nall++;
	}
	if (dir)
		closedir(dir);
	for (int i = 0; i < n && n < max; i++)
		for (int j = 0; j < nall && n < max; j++)
			if (par[j] == out[i])
				out[n++] = all[j];
	return n;
}

static int run_one(struct cli_opts *o, const struct cli_command *c, pid_t pid)
{
	int fd = -1, r;

	if (c->locks && (fd = cli_lock(o, pid, c->name)) < 0)
		return EXIT_FAIL;
	r = c->run(o, pid);
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * With --tree, dump and stop skip a descendant that is not collecting (never
 * attached, forked before start, or already past its final snapshot because
 * it is exiting) with a note, instead of failing on it.
 */
static int skip_descendant(const struct cli_command *c, pid_t pid)
{
	struct proc_status st;
	struct cov_state s;

	if (cli_proc_status(pid, &st) || st.state == 'Z' || st.state == 'X') {
		printf("%d: skipped: it has exited\n", (int)pid);
		return 1;
	}
	if (!cli_is_python(pid)) {
		printf("%d: skipped: not a CPython process\n", (int)pid);
		return 1;
	}
	if (!c->needs_collecting)
		return 0;
	if (cli_read_state(pid, &s)) {
		printf("%d: skipped: covinject is not loaded in it\n", (int)pid);
		return 1;
	}
	if (!cli_state_is_own(pid, &s)) {
		printf("%d: skipped: %s\n", (int)pid, s.unhooked ? "forked without "
		       "Python's after-fork hooks, it has no collector of its own (it "
		       "writes its own file when it exits normally; covinject start "
		       "gives it one)" : "it only inherited the collector's memory");
		return 1;
	}
	if (s.phase != COV_COLLECTING) {
		printf("%d: skipped: covinject is %s in it\n", (int)pid,
		       cli_phase_name(s.phase));
		return 1;
	}
	return 0;
}

/* The root too is skipped when its start found no interpreter (Apache's
 * parent) or is still waiting to run (a uWSGI master without threads runs
 * no Python): a tree's dump and stop then act on its children alone. */
static int root_idle(const struct cli_command *c, pid_t pid)
{
	struct cov_state s;

	return c->needs_collecting && cli_read_state(pid, &s) == 0 &&
	       (s.no_interpreter || s.phase == COV_STARTING);
}

int cli_run(struct cli_opts *o, const struct cli_command *c)
{
	static pid_t pids[MAX_TREE];
	int n, failed = 0;

	if (!o->tree)
		return run_one(o, c, o->pid);
	n = tree(o->pid, pids, MAX_TREE);
	for (int i = 0; i < n; i++) {
		if ((i > 0 || root_idle(c, pids[i])) && skip_descendant(c, pids[i]))
			continue;
		failed |= run_one(o, c, pids[i]) != EXIT_OK;
	}
	return failed ? EXIT_FAIL : EXIT_OK;
}
