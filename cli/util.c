/*
 * util.c - what every command shares: messages, the process checks made
 * from /proc before anything else, the payload's status block, and the
 * per-process lock that keeps two covinject commands from interleaving.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"

void cli_err(pid_t pid, const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (pid > 0)
		fprintf(stderr, "covinject: %s %d: %s\n", cmd, (int)pid, msg);
	else
		fprintf(stderr, "covinject: %s: %s\n", cmd, msg);
}

void cli_debug(struct cli_opts *o, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!o->verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "covinject: debug: %s\n", msg);
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *cli_phase_name(uint32_t p)
{
	static const char *const n[] = { "loaded, never started", "starting",
					 "collecting", "stopping", "stopped", "failed" };

	return p < sizeof(n) / sizeof(n[0]) ? n[p] : "unknown";
}

/* What the payload thread of a start is doing (cov_state.step). */
const char *cli_step_name(uint32_t step)
{
	static const char *const n[] = { "setting up",
		"created, not yet running (the process may be stopped or starved of CPU)",
		"waiting for the output directory from covinject",
		"loading libsqlite3",
		"waiting for the interpreter to be initialised",
		"waiting for the GIL (a thread may hold it in native code)",
		"installing the collector in every thread (GIL held)",
		"installing its signal handlers" };

	return step < sizeof(n) / sizeof(n[0]) ? n[step] : "setting up";
}

/* The seconds since a CLOCK_REALTIME stamp of the payload's, >= 0. */
double cli_since(int64_t ns)
{
	struct timespec ts;
	double d;

	clock_gettime(CLOCK_REALTIME, &ts);
	d = ts.tv_sec + ts.tv_nsec / 1e9 - ns / 1e9;
	return d > 0 ? d : 0;
}

int cli_check_process(pid_t pid, const char *cmd, struct proc_status *st)
{
	int r;

	if (pid == getpid()) {
		cli_err(pid, cmd, "that is covinject itself (give the pid of a Python process)");
		return EXIT_FAIL;
	}
	if (kill(pid, 0) && errno == ESRCH) {
		cli_err(pid, cmd, "no such process (check the pid with ps)");
		return EXIT_FAIL;
	}
	if ((r = cli_proc_status(pid, st))) {
		cli_err(pid, cmd, "cannot read /proc/%d/status: %s (is /proc mounted? "
			"does the process still exist?)", (int)pid, strerror(-r));
		return EXIT_FAIL;
	}
	if (st->state == 'Z' || st->state == 'X') {
		cli_err(pid, cmd, "the process has exited (zombie %s)", st->name);
		return EXIT_FAIL;
	}
	if (st->kthread) {
		cli_err(pid, cmd, "%s is a kernel thread, not a Python process", st->name);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* The payload's block, for dump/stop/status: loaded or a clear message. */
int cli_need_state(pid_t pid, const char *cmd, struct cov_state *s)
{
	int r = cli_read_state(pid, s);

	if (r == -ENOENT) {
		cli_err(pid, cmd, "covinject is not loaded in this process (start "
			"collecting with: covinject start %d)", (int)pid);
		return EXIT_FAIL;
	}
	if (r == -EPERM || r == -EACCES) {
		struct proc_status st;
		char hint[400] = "run as root or as the process's user";

		if (cli_proc_status(pid, &st) == 0)
			cli_access_hint(pid, &st, hint, sizeof(hint));
		cli_err(pid, cmd, "cannot read its memory: %s (%s)", strerror(-r), hint);
		return EXIT_FAIL;
	}
	if (r) {
		cli_err(pid, cmd, "cannot read the payload's status: %s (a payload of "
			"another covinject version may be loaded)", strerror(-r));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/*
 * One covinject command per process at a time: an exclusive flock on the
 * /proc/PID directory, which every command opens the same.  Waits up to
 * the timeout, then fails with a message.  Returns the fd to close, or -1.
 */
int cli_lock(struct cli_opts *o, pid_t pid, const char *cmd)
{
	char fn[64];
	double deadline = cli_now() + o->timeout;
	int fd;

	snprintf(fn, sizeof(fn), "/proc/%d", (int)pid);
	if ((fd = open(fn, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		cli_err(pid, cmd, "no such process (check the pid with ps)");
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK || cli_now() > deadline) {
			cli_err(pid, cmd, "another covinject command is working on this "
				"process (try again when it has finished)");
			close(fd);
			return -1;
		}
		usleep(5000);
	}
	return fd;
}

/*
 * The pid still names the process we checked: a pid freed and reused by a
 * new process in between has another start time.  0, or EXIT_FAIL with a
 * message.
 */
int cli_same_process(pid_t pid, const char *cmd, uint64_t starttime)
{
	struct proc_status now;

	if (cli_proc_status(pid, &now) || now.starttime != starttime) {
		cli_err(pid, cmd, "the process ended (its pid may have been reused by "
			"another process): nothing was done");
		return EXIT_FAIL;
	}
	return 0;
}
