/*
 * start.c - covinject start: check everything /proc can tell, then load the
 * payload (inject/) and wait until the payload says it is collecting.
 * Every refusal happens before the target is touched and changes nothing.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "../inject/inject.h"
#include "../payload/versions.h"

#define SIGBIT(s) (1ULL << ((s) - 1))

static void log_line(void *arg, const char *line)
{
	cli_debug(arg, "%s", line);
}

static int active(const struct cov_state *s)
{
	return s->phase == COV_STARTING || s->phase == COV_COLLECTING;
}

/* The version gate: payload/versions.h is the table, shared with the payload. */
static int check_python(pid_t pid, const char *cmd, const struct proc_status *st,
			int *major, int *minor)
{
	char image[512], range[32], newest[16], hint[400];
	int ft, r = inject_python_version(pid, major, minor, &ft, image, sizeof(image));

	cov_python_range(range, sizeof(range));
	if (r == -EACCES || r == -EPERM) {
		cli_access_hint(pid, st, hint, sizeof(hint));
		cli_err(pid, cmd, "cannot read /proc/%d/maps: %s (%s)", (int)pid,
			strerror(-r), hint);
		return EXIT_FAIL;
	}
	if (r) {
		cli_err(pid, cmd, "%s is not a CPython process: no libpythonX.Y or "
			"pythonX.Y is mapped in it (give the pid of a Python %s "
			"interpreter)", st->name, range);
		return EXIT_FAIL;
	}
	switch (cov_python_fit(*major, *minor)) {
	case COV_PY_SUPPORTED:
		break;
	case COV_PY_NEWER:
		cli_err(pid, cmd, "Python %d.%d (%s) is newer than covinject knows: "
			"the newest version it supports is %s (use a covinject release "
			"that supports %d.%d)", *major, *minor, image,
			cov_python_newest(newest, sizeof(newest)), *major, *minor);
		return EXIT_FAIL;
	default:
		cli_err(pid, cmd, "Python %d.%d (%s) is not supported: covinject "
			"supports CPython %s (run the program on one of those)", *major,
			*minor, image, range);
		return EXIT_FAIL;
	}
	if (ft) {
		cli_err(pid, cmd, "Python %d.%dt (%s) is a free-threaded build "
			"(Py_GIL_DISABLED): covinject supports only the default builds, "
			"with the GIL (run the program on python%d.%d to measure it)",
			*major, *minor, image, *major, *minor);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int cli_is_python(pid_t pid)
{
	char image[512];
	int major, minor, ft;

	return inject_python_version(pid, &major, &minor, &ft, image, sizeof(image)) == 0;
}

static int check_signal(struct cli_opts *o, const char *what, int sig,
			const struct proc_status *st)
{
	char name[32];

	if (!(st->sigcgt & SIGBIT(sig)) && !(st->sigign & SIGBIT(sig)))
		return EXIT_OK;
	if (o->chain)
		return EXIT_OK;	/* ours runs first, then the program's */
	cli_err(o->pid, "start", "the process already %s SIG%s, the %s signal (choose "
		"free ones, e.g. --dump-signal RTMIN+3 --stop-signal RTMIN+4, or "
		"keep its handler running after ours with --chain)",
		st->sigcgt & SIGBIT(sig) ? "handles" : "ignores",
		cli_signal_name(sig, name, sizeof(name)), what);
	return EXIT_FAIL;
}

static int find_payload(char *out, size_t len)
{
	static const char *const rel[] = {
		"payload/covinject-payload.so",			/* build tree */
		"../lib/covinject/covinject-payload.so",	/* installed */
	};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	exe[n] = 0;
	if (!(slash = strrchr(exe, '/')))
		return -1;
	*slash = 0;
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		if ((size_t)snprintf(out, len, "%s/%s", exe, rel[i]) < len &&
		    access(out, R_OK) == 0)
			return 0;
	}
#ifdef COVINJECT_LIBDIR
	snprintf(out, len, "%s/covinject-payload.so", COVINJECT_LIBDIR);
	if (access(out, R_OK) == 0)
		return 0;
#endif
	return -1;
}

/*
 * A --source: an existing directory (made absolute, symlinks resolved), or
 * else the name of a package the target can import (resolved in the target
 * by the payload, payload/modules.c) -- coverage.py's rule (inorout.py).
 */
static int source_line(struct cli_opts *o, const char *src, char *buf, size_t len)
{
	char real[PATH_MAX], theirs[PATH_MAX];
	struct stat st;
	const char *c;

	if (stat(src, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || !cli_real_dir(src, real, sizeof(real))) {
			cli_err(o->pid, "start", "--source %s: not a directory (give a "
				"directory or the name of an importable package)", src);
			return -1;
		}
		if (cli_target_path(o->pid, real, theirs, sizeof(theirs))) {
			cli_err(o->pid, "start", "--source %s: the process does not see "
				"this directory at %s (it has another root or mount "
				"namespace): give it as /proc/%d/root/DIR, DIR being the "
				"process's name for it, or give a package name", src, real,
				(int)o->pid);
			return -1;
		}
		return snprintf(buf, len, "source=%s\n", theirs);
	}
	for (c = src; *c && (*c == '_' || *c == '.' || isalnum((unsigned char)*c)); c++)
		;
	if (*c || !*src || *src == '.' || isdigit((unsigned char)*src)) {
		cli_err(o->pid, "start", "--source %s: %s (give an existing directory "
			"or the name of an importable package)", src, strerror(errno));
		return -1;
	}
	return snprintf(buf, len, "source_pkg=%s\n", src);
}

/*
 * coverage.py's prep_patterns (coverage/files.py): a pattern that starts
 * with a wildcard is kept; any other is made absolute against the current
 * directory with symlinks resolved, as os.path.realpath would: component by
 * component, a missing one (or a wildcard) kept as written.
 */
/* "/a/b" -> "/a"; "/a" -> "" (the root) */
static void drop_last(char *path)
{
	char *slash = strrchr(path, '/');

	*(slash ? slash : path) = 0;
}

static int abs_pattern(pid_t pid, const char *pat, char *out, size_t len)
{
	char work[PATH_MAX], path[PATH_MAX] = "", next[PATH_MAX], real[PATH_MAX];
	char *comp, *save;
	struct stat st;
	size_t n;
	int theirs;

	if (pat[0] == '*' || pat[0] == '?')
		return snprintf(out, len, "%s", pat) < (int)len ? 0 : -1;
	if (pat[0] == '/')
		snprintf(work, sizeof(work), "%s", pat);
	else if (!getcwd(path, sizeof(path)) ||
		 snprintf(work, sizeof(work), "%s/%s", path, pat) >= (int)sizeof(work))
		return -1;
	/* /proc/PID/root/...: the target's own name for it, taken as written
	 * (its symlinks are not ours to resolve) */
	n = (size_t)snprintf(next, sizeof(next), "/proc/%d/root/", (int)pid);
	if ((theirs = !strncmp(work, next, n)))
		memmove(work, work + n - 1, strlen(work + n - 1) + 1);
	path[0] = 0;
	for (comp = strtok_r(work, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			drop_last(path);
			continue;
		}
		if (snprintf(next, sizeof(next), "%s/%s", path, comp) >= (int)sizeof(next))
			return -1;
		if (!theirs && lstat(next, &st) == 0 && S_ISLNK(st.st_mode) &&
		    realpath(next, real))
			snprintf(path, sizeof(path), "%s", strcmp(real, "/") ? real : "");
		else
			snprintf(path, sizeof(path), "%s", next);
	}
	return snprintf(out, len, "%s", path[0] ? path : "/") < (int)len ? 0 : -1;
}

/* --include/--omit values: comma-separated lists, as coverage.py takes them. */
static int pattern_lines(struct cli_opts *o, const char *key, const char *const *pats,
			 int n, char *buf, size_t len)
{
	char list[PATH_MAX], one[PATH_MAX], *item, *save;
	size_t used = 0;

	for (int i = 0; i < n; i++) {
		snprintf(list, sizeof(list), "%s", pats[i]);
		for (item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
			if (abs_pattern(o->pid, item, one, sizeof(one))) {
				cli_err(o->pid, "start", "--%s %s: cannot make it an absolute "
					"pattern (path too long?)", key, item);
				return -1;
			}
			used += snprintf(buf + used, used < len ? len - used : 0,
					 "%s=%s\n", key, one);
		}
	}
	return (int)used;
}

static int build_config(struct cli_opts *o, const char *dir, int by_fd, char *buf,
			size_t len)
{
	size_t n = 0;
	int r = 0;

	n += snprintf(buf + n, len - n, "out=%s\nout_fd=%d\ndump_signal=%d\n"
		      "stop_signal=%d\nchain=%d\ninterval=%g\nimport_lines=%d\n"
		      "branch=%d\ngil_at_requests=%d\ncollector=%s\nwatch_window=%g\n", dir,
		      by_fd, o->dump_sig, o->stop_sig, o->chain, o->interval,
		      !o->no_import_lines, o->branch, o->gil_at_requests,
		      cov_collector_names[o->collector],
		      o->watch_window);
	for (int i = 0; i < o->nsources && n < len; i++) {
		if ((r = source_line(o, o->sources[i], buf + n, len - n)) < 0)
			return -1;
		n += r;
	}
	if (n < len && (r = pattern_lines(o, "include", o->includes, o->nincludes,
					  buf + n, len - n)) >= 0)
		n += r;
	if (n < len && r >= 0 && (r = pattern_lines(o, "omit", o->omits, o->nomits,
						     buf + n, len - n)) >= 0)
		n += r;
	if (r < 0)
		return -1;
	if (n < len)
		n += snprintf(buf + n, len - n, "argv=covinject start %d\n", (int)o->pid);
	if (n >= len) {
		cli_err(o->pid, "start", "too many or too long --source, --include or "
			"--omit values");
		return -1;
	}
	buf[n - 1] = 0;	/* no trailing newline */
	if (o->nincludes && o->nsources)
		fprintf(stderr, "covinject: start %d: --include is ignored because "
			"--source is given (as coverage.py does)\n", (int)o->pid);
	return 0;
}

/* Until the payload answers: 0 collecting, -1 failed (s->error says
 * why), -2 no answer in time, or the positive errno cov_start returned. */
static int wait_collecting(struct cli_opts *o, struct cov_state *s, uint32_t calls)
{
	double deadline = cli_now() + o->timeout;

	for (;;) {
		if (kill(o->pid, 0) && errno == ESRCH)
			return -3;	/* it exited (a worker that failed to boot) */
		if (cli_read_state(o->pid, s) == 0 && s->start_calls != calls) {
			if (s->start_error)
				return s->start_error;
			if (s->phase != COV_STARTING)
				return s->phase == COV_COLLECTING ? 0 : -1;
		}
		if (cli_now() > deadline)
			return -2;
		usleep(2000);
	}
}

/* A start whose collector is still coming up (another covinject's, or one
 * that died before handing over the directory) settles within seconds. */
static int settled(struct cli_opts *o, struct cov_state *s)
{
	double deadline = cli_now() + o->timeout;

	while (s->phase == COV_STARTING && cli_now() < deadline) {
		usleep(10000);
		if (cli_read_state(o->pid, s))
			return -1;
	}
	return 0;
}

static int start_checks(struct cli_opts *o, struct proc_status *st, char *dir,
			int *by_fd, uint32_t *calls)
{
	struct cov_state s;
	int major, minor, r;

	if ((r = cli_check_process(o->pid, "start", st)) ||
	    (r = check_python(o->pid, "start", st, &major, &minor)))
		return r;
	if (o->branch && minor < 12) {
		cli_err(o->pid, "start", "--branch is not supported on Python %d.%d: it "
			"needs the branch events of sys.monitoring, Python 3.12 or later "
			"(measure lines only: leave out --branch)", major, minor);
		return EXIT_FAIL;
	}
	if ((o->collector == COV_COLLECTOR_PROBE && (major != 3 || minor < 9 || minor > 11)) ||
	    (o->collector == COV_COLLECTOR_TRACE && major == 3 && minor >= 12)) {
		cli_err(o->pid, "start", "--collector %s is not supported on Python "
			"%d.%d: the choice is for 3.9-3.11 (3.12 and later always use "
			"sys.monitoring, which costs as little; 2.7 and 3.6-3.8 the "
			"trace function; leave out --collector)",
			cov_collector_names[o->collector], major, minor);
		return EXIT_FAIL;
	}
	/* uWSGI without threads holds the GIL outside Python: the collector's
	 * thread gets it only while a request runs (README, "uWSGI") */
	o->gil_at_requests = cli_uwsgi_without_threads(o->pid);
	if (!cli_target_has_proc(o->pid)) {
		cli_err(o->pid, "start", "the process has no /proc in its root (a "
			"container without procfs): covinject loads its collector "
			"through /proc/self/fd and cannot attach (mount proc at /proc "
			"in its mount namespace)");
		return EXIT_FAIL;
	}
	if (!cli_target_has_sqlite(o->pid)) {
		cli_err(o->pid, "start", "the process cannot load libsqlite3.so.0: "
			"none in its root's library directories, and covinject writes "
			"coverage.py's SQLite data files with the process's own "
			"SQLite (install it in the image: libsqlite3-0 on Debian and "
			"Ubuntu, sqlite-libs on RHEL and Alpine)");
		return EXIT_FAIL;
	}
	if (st->state == 'T' || st->state == 't') {
		cli_err(o->pid, "start", "the process is stopped (state %c): resume it "
			"with kill -CONT %d first", st->state, (int)o->pid);
		return EXIT_FAIL;
	}
	*calls = 0;
	if (cli_read_state(o->pid, &s) == 0 && settled(o, &s) == 0) {
		if (active(&s) && cli_state_is_own(o->pid, &s)) {
			cli_err(o->pid, "start", "covinject is already collecting in this "
				"process (stop it with: covinject stop %d)", (int)o->pid);
			return EXIT_FAIL;
		}
		/* a child's inherited collector: its handlers are ours, and go */
		if (s.phase == COV_COLLECTING && s.unhooked && !s.chain)
			st->sigcgt &= ~(SIGBIT(s.dump_sig) | SIGBIT(s.stop_sig));
		*calls = s.start_calls;
	}
	if ((r = check_signal(o, "dump", o->dump_sig, st)) ||
	    (r = check_signal(o, "stop", o->stop_sig, st)))
		return r;
	if ((r = cli_out_dir("start", o->pid, o->out_dir, st, dir, PATH_MAX, by_fd)))
		return r;
	if (st->tracer) {
		cli_err(o->pid, "start", "it is already traced by pid %d (detach that "
			"debugger or tracer first)", (int)st->tracer);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int cli_start(struct cli_opts *all, pid_t pid)
{
	struct cli_opts one = *all, *o = &one;
	struct inject_log log = { log_line, o };
	struct inject_err err = { .msg = "", .log = &log };
	struct inject_stats stats = { 0 };
	struct proc_status st;
	struct cov_state s;
	char dir[PATH_MAX], payload[PATH_MAX], config[12000], hint[400], name[32];
	char line[600];
	sigset_t block, old;
	uint32_t calls;
	int r, by_fd;

	o->pid = pid;
	if ((r = start_checks(o, &st, dir, &by_fd, &calls)))
		return r;
	if (find_payload(payload, sizeof(payload))) {
		cli_err(o->pid, "start", "covinject-payload.so not found next to the "
			"covinject command (rebuild with make, or reinstall)");
		return EXIT_FAIL;
	}
	if (build_config(o, dir, by_fd, config, sizeof(config)))
		return EXIT_FAIL;
	if (cli_same_process(o->pid, "start", st.starttime))
		return EXIT_FAIL;
	cli_debug(o, "payload %s", payload);
	/* Ctrl-C must not kill us while a thread of the target is borrowed. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &old);
	r = inject_start(o->pid, payload, config, &stats, &err);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (r) {
		if (r == -EPERM) {
			cli_access_hint(o->pid, &st, hint, sizeof(hint));
			cli_err(o->pid, "start", "%s (%s)", err.msg, hint);
		} else {
			cli_err(o->pid, "start", "%s", err.msg);
		}
		return EXIT_FAIL;
	}
	cli_debug(o, "thread %d was borrowed for %.3f ms%s", (int)stats.tid,
		  stats.stopped_ns / 1e6, stats.loaded ? " (payload loaded)" : "");
	/* The payload thread waits for the directory before it does anything. */
	if (by_fd && cli_read_state(o->pid, &s) == 0 && s.start_calls != calls &&
	    !s.start_error && s.dir_sock >= 0 &&
	    (r = cli_send_dir(o->pid, "start", s.dir_sock, dir)))
		return r;
	r = wait_collecting(o, &s, calls);
	if (r == -2 && o->gil_at_requests) {
		printf("covinject: %d: loaded; collection begins at its next request "
		       "(uWSGI without --enable-threads lets the collector run only "
		       "while a request runs Python; check with: covinject status %d)\n",
		       (int)o->pid, (int)o->pid);
		return EXIT_OK;
	}
	if (r == -3) {
		cli_err(o->pid, "start", "the process exited while its collector was "
			"starting (it was %s)",
			cli_step_name(s.step));
		return EXIT_FAIL;
	}
	if (r == -2) {
		cli_err(o->pid, "start", "the payload is loaded but did not start "
			"collecting within %.0f s: its thread is %s, for %.1f s "
			"(check with: covinject status %d)", o->timeout,
			cli_step_name(s.step), cli_since(s.step_ns), (int)o->pid);
		return EXIT_FAIL;
	}
	if (r > 0) {
		cli_err(o->pid, "start", "the payload refused to start: %s (check with: "
			"covinject status %d)", strerror(r), (int)o->pid);
		return EXIT_FAIL;
	}
	if (r && s.no_interpreter && all->tree) {
		printf("%d: skipped: libpython is loaded but no interpreter runs in it\n",
		       (int)pid);
		return EXIT_OK;
	}
	if (r) {
		cli_err(o->pid, "start", "collection did not start: %s", s.error);
		return EXIT_FAIL;
	}
	printf("covinject: collecting in %d (Python %d.%d); snapshot: kill -%s %d; "
	       "stop: covinject stop %d\n", (int)o->pid, (s.py_hex >> 24) & 255,
	       (s.py_hex >> 16) & 255, cli_signal_name(o->dump_sig, name, sizeof(name)),
	       (int)o->pid, (int)o->pid);
	printf("data file: %s\n", s.data_file);
	fflush(stdout);
	if (cli_interps_unmeasured(&s, 1, line, sizeof(line)))
		fprintf(stderr, "covinject: start %d: %s\n", (int)o->pid, line);
	if (s.skipped_threads)
		fprintf(stderr, "covinject: start %d: %u thread(s) already have a trace "
			"function (a debugger or another coverage tool): they are not "
			"measured\n", (int)o->pid, s.skipped_threads);
	return EXIT_OK;
}

