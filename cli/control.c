/*
 * control.c - covinject dump, stop and status.
 *
 * dump and stop do not send a signal: they write the request byte straight
 * into the payload's pipe through /proc/PID/fd/<wake_fd> (the same ptrace
 * permission that reading the status block needs).  So they work when the
 * program has replaced covinject's signal handlers (a gunicorn worker resets
 * USR1/USR2), and they can never kill a process whose handler is gone.
 * Then they read the status block until the payload has answered.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "../inject/inject.h"

static int collecting_here(pid_t pid, const char *cmd, struct cov_state *s,
			   struct proc_status *st)
{
	int r;

	if ((r = cli_check_process(pid, cmd, st)) || (r = cli_need_state(pid, cmd, s)))
		return r;
	if (!cli_state_is_own(pid, s)) {
		cli_err(pid, cmd, "covinject is not collecting in this process on its "
			"own: it inherited the collector's memory from its parent (its "
			"pid %d in its own namespace), %s (start it with: covinject "
			"start %d)", (int)s->pid, s->unhooked ? "forked without "
			"Python's after-fork hooks; it writes what it records to a "
			"file of its own when it exits normally" : "forked before "
			"collection started", (int)pid);
		return EXIT_FAIL;
	}
	if (s->phase != COV_COLLECTING) {
		cli_err(pid, cmd, "covinject is %s in this process, not collecting "
			"(start it with: covinject start %d)", cli_phase_name(s->phase),
			(int)pid);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int send_request(pid_t pid, const char *cmd, const struct cov_state *s,
			char req, uint64_t starttime)
{
	struct stat st;
	int fd, ok;

	if (cli_same_process(pid, cmd, starttime))
		return EXIT_FAIL;
	fd = inject_take_fd(pid, s->wake_fd, O_WRONLY | O_NONBLOCK);
	if (fd < 0) {
		cli_err(pid, cmd, "open the collector's request pipe (fd %d): %s",
			s->wake_fd, strerror(-fd));
		return EXIT_FAIL;
	}
	ok = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) &&
	     (write(fd, &req, 1) == 1 || errno == EAGAIN);	/* full: one is pending */
	close(fd);
	if (!ok) {
		cli_err(pid, cmd, "write to the collector's request pipe (fd %d) failed",
			s->wake_fd);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/*
 * dump -o DIR, stop -o DIR: the collector writes this and every later
 * snapshot into DIR (the file keeps its name).  Sent before the request,
 * which the payload reads after draining its directory socket.
 */
static int new_dir(struct cli_opts *o, pid_t pid, const char *cmd,
		   const struct cov_state *s, const struct proc_status *st)
{
	char dir[PATH_MAX];
	int by_fd, r;

	if (!o->out_given)
		return EXIT_OK;
	if ((r = cli_out_dir(cmd, pid, o->out_dir, st, dir, sizeof(dir), &by_fd)))
		return r;
	if (!by_fd || s->dir_sock < 0) {
		cli_err(pid, cmd, "this collector cannot take another directory (it "
			"was started %s): stop it, then start it with -o %s",
			by_fd ? "by an older covinject" : "on a kernel before Linux 5.6",
			dir);
		return EXIT_FAIL;
	}
	return cli_send_dir(pid, cmd, s->dir_sock, dir);
}

/* Wait until the payload's answer shows; 0, EXIT_FAIL with a message, or
 * GONE with a note (a --tree descendant that exited meanwhile). */
#define GONE (-1)
static int await(struct cli_opts *o, pid_t pid, const char *cmd, struct cov_state *s,
		 int (*done)(const struct cov_state *, uint32_t), uint32_t before)
{
	double deadline = cli_now() + o->timeout;

	for (;;) {
		if (cli_read_state(pid, s)) {
			/* a --tree descendant may exit on its own meanwhile (a pool
			 * worker recycled): its exit wrote its final snapshot */
			if (o->tree && pid != o->pid) {
				printf("%d: skipped: it exited while covinject %s waited "
				       "for it (an exit writes its own final snapshot, "
				       "but for SIGKILL and _exit from C)\n", (int)pid, cmd);
				return GONE;
			}
			cli_err(pid, cmd, "the process went away while waiting");
			return EXIT_FAIL;
		}
		if (done(s, before))
			return EXIT_OK;
		if (cli_now() > deadline) {
			cli_err(pid, cmd, "no answer from the collector within %.0f s (%s; "
				"try again, or raise --timeout)", o->timeout,
				cli_uwsgi_without_threads(pid) ? "uWSGI without "
				"--enable-threads lets it run only while a request runs "
				"Python: it answers at the next request" : "the process "
				"may hold the GIL in native code");
			return EXIT_FAIL;
		}
		usleep(2000);
	}
}

/* ---- where data is not being collected --------------------------------- */

static void clock_of(int64_t ns, char *out, size_t len)
{
	time_t sec = ns / 1000000000;
	struct tm tm;

	strftime(out, len, "%H:%M:%S", localtime_r(&sec, &tm));
}

/* " (threads 4242, 4250, ...)", the main thread named as such. */
static void tids_of(const struct cov_state *s, const struct cov_lost *l, char *out,
		    size_t len)
{
	size_t at = 0;

	out[0] = 0;
	for (uint32_t i = 0; i < l->ntids && i < COV_LOST_TIDS && at < len; i++) {
		if (!l->tids[i])
			return;	/* ids unknown on this interpreter */
		at += snprintf(out + at, len - at, "%s%d%s", i ? ", " : " (thread ",
			       (int)l->tids[i], l->tids[i] == s->pid ? " main" : "");
	}
	if (at && at < len)
		snprintf(out + at, len - at, "%s)", l->n > l->ntids ? ", ..." : "");
}

/*
 * Each condition under which the collector is not collecting, as one line
 * without its newline: "removed by the program on 2 of 9 threads since
 * 12:03:04 (thread 4242, 4250)".  Returns how many were found.
 */
int cli_interps_unmeasured(const struct cov_state *s, int isolated, char *buf,
			   size_t len)
{
	uint32_t not = s->interpreters > s->interps_measured ?
		       s->interpreters - s->interps_measured : 0;
	uint32_t iso = s->interps_isolated < not ? s->interps_isolated : not;
	char a[200] = "", b[300] = "";

	if (!not || (!isolated && not == iso))
		return 0;
	if (!isolated) {
		not -= iso;
		iso = 0;
	}
	if (iso)
		snprintf(a, sizeof(a), "%u isolated (a GIL and an allocator of their own, "
			 "as interpreters.create() makes on 3.12+: covinject cannot "
			 "measure them)", iso);
	if (not > iso)
		snprintf(b, sizeof(b), "%s%u not reached yet (a sub-interpreter is "
			 "measured from the sweep that first meets it, within a second, "
			 "when a sys.monitoring tool id is free in it)", iso ? "; " : "",
			 not - iso);
	snprintf(buf, len, "%u of %u interpreters are not measured: %s%s", not,
		 s->interpreters, a, b);
	return 1;
}

static int not_collecting(const struct cov_state *s, void (*emit)(const char *, void *),
			  void *arg)
{
	static const struct {
		size_t off;
		const char *what;
	} kinds[] = {
		{ offsetof(struct cov_state, removed), "the program removed the trace "
		  "function (sys.settrace(None); covinject does not put itself back)" },
		{ offsetof(struct cov_state, replaced), "another trace function (a "
		  "debugger, another coverage tool) replaced covinject's" },
		{ offsetof(struct cov_state, foreign), "already traced by another tool "
		  "when covinject met them" },
	};
	char line[512], when[32], tids[160];
	int n = 0;

	if (!s->sweeps)
		return 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct cov_lost *l = (const void *)((const char *)s + kinds[i].off);

		if (!l->n)
			continue;
		clock_of(l->since_ns, when, sizeof(when));
		tids_of(s, l, tids, sizeof(tids));
		snprintf(line, sizeof(line), "%s: on %u of %u threads since %s%s",
			 kinds[i].what, l->n, s->threads_now, when, tids);
		emit(line, arg);
		n++;
	}
	if (s->probe.unobserved) {
		clock_of(s->probe.unobserved_ns, when, sizeof(when));
		snprintf(line, sizeof(line), "%u frames that were running at start (the "
			 "lines they run from then on) since %s: the watch window ended "
			 "(start --watch-window 0 watches them for as long as they run)",
			 s->probe.unobserved, when);
		emit(line, arg);
		n++;
	}
	if (s->hook_lost_ns) {
		clock_of(s->hook_lost_ns, when, sizeof(when));
		snprintf(line, sizeof(line), "the program replaced covinject's "
			 "threading.settrace hook since %s: threads it starts from then on "
			 "are not collected", when);
		emit(line, arg);
		n++;
	}
	if (cli_interps_unmeasured(s, 0, line, sizeof(line))) {
		emit(line, arg);	/* isolated ones: start and status say so */
		n++;
	}
	if (s->monitoring_lost) {
		clock_of(s->monitoring_lost_ns, when, sizeof(when));
		snprintf(line, sizeof(line), "the program %s since %s: nothing new is "
			 "recorded", s->monitoring_lost & COV_MON_TOOL ? "freed covinject's "
			 "sys.monitoring tool id" : "changed the events of covinject's "
			 "sys.monitoring tool id", when);
		emit(line, arg);
		n++;
	}
	return n;
}

struct warn_to {
	pid_t pid;
	const char *cmd;
};

static void warn_line(const char *line, void *arg)
{
	const struct warn_to *w = arg;

	cli_err(w->pid, w->cmd, "warning: not collecting everywhere: %s", line);
}

static void status_line(const char *line, void *arg)
{
	(void)arg;
	printf("not collecting: %s\n", line);
}

/* The snapshot's path; with --tree, after the pid it belongs to. */
static int print_file(const struct cli_opts *o, pid_t pid, const struct cov_state *s,
		      const char *cmd)
{
	struct warn_to w = { pid, cmd };

	not_collecting(s, warn_line, &w);
	if (o->tree)
		printf("%d: %s\n", (int)pid, s->last_file);
	else
		printf("%s\n", s->last_file);
	return EXIT_OK;
}

static int dumped(const struct cov_state *s, uint32_t before)
{
	return s->dumps + s->dump_errors != before;
}

/* Stopped, or collecting again after a final snapshot that failed; with
 * uWSGI without threads, the final snapshot written (the collector goes
 * at the next request, when the GIL comes). */
static int stopped(const struct cov_state *s, uint32_t errors_before)
{
	return s->phase == COV_STOPPED || s->phase == COV_FAILED ||
	       (s->phase == COV_COLLECTING && s->dump_errors != errors_before) ||
	       (s->phase == COV_STOPPING && s->gil_at_requests && s->final_written);
}

int cli_dump(struct cli_opts *o, pid_t pid)
{
	struct proc_status st;
	struct cov_state s;
	uint32_t before;
	int r;

	if ((r = collecting_here(pid, "dump", &s, &st)) ||
	    (r = new_dir(o, pid, "dump", &s, &st)))
		return r;
	before = s.dumps + s.dump_errors;
	if ((r = send_request(pid, "dump", &s, o->reset ? COV_REQ_RESET : COV_REQ_DUMP,
			      st.starttime)) ||
	    (r = await(o, pid, "dump", &s, dumped, before)))
		return r == GONE ? EXIT_OK : r;
	if (s.error[0]) {
		cli_err(pid, "dump", "snapshot failed: %s (the data stays in memory; "
			"fix the cause and dump again)", s.error);
		return EXIT_FAIL;
	}
	return print_file(o, pid, &s, "dump");
}

int cli_stop(struct cli_opts *o, pid_t pid)
{
	struct proc_status st;
	struct cov_state s;
	int r;

	if ((r = collecting_here(pid, "stop", &s, &st)) ||
	    (r = new_dir(o, pid, "stop", &s, &st)) ||
	    (r = send_request(pid, "stop", &s, COV_REQ_STOP, st.starttime)) ||
	    (r = await(o, pid, "stop", &s, stopped, s.dump_errors)))
		return r == GONE ? EXIT_OK : r;
	if (s.phase == COV_COLLECTING) {
		cli_err(pid, "stop", "the final snapshot failed: %s (nothing was "
			"discarded and collection goes on: fix the cause and run "
			"covinject stop %d again, or write elsewhere with covinject "
			"stop -o DIR %d)", s.error, (int)pid, (int)pid);
		return EXIT_FAIL;
	}
	if (s.phase == COV_STOPPING)
		fprintf(stderr, "covinject: stop %d: final snapshot written; the collector "
			"is removed at the next request (uWSGI without --enable-threads "
			"lends the GIL only then; covinject status %d shows it)\n",
			(int)pid, (int)pid);
	return print_file(o, pid, &s, "stop");
}

/* --collector probe: the probes, and the trace function while frames that
 * were running at start still run (payload/probes.c). */
static void print_probes(const struct cov_state *s)
{
	printf("collector: bytecode probes in %u code objects (%u functions moved "
	       "onto them at start", s->probe.codes, s->probe.functions);
	if (s->probe.failed)
		printf("; %u code objects could not be instrumented and are not "
		       "measured", s->probe.failed);
	if (s->probe.unwatched)
		printf("; %u generators from start could not be watched (no memory): "
		       "their lines are not measured", s->probe.unwatched);
	printf(")\n");
	if (s->probe.passing)
		printf("collector: trace function on every thread while functions are "
		       "moved onto the probed code\n");
	else if (s->probe.watching && !s->sweeps)
		printf("collector: trace function for %u frames that were running at "
		       "start\n", s->probe.watched);
	else if (s->probe.watching)
		printf("collector: trace function on %u of %u threads, for %u frames "
		       "that were running at start\n", s->threads_ours, s->threads_now,
		       s->probe.watched);
	else if (s->threads_now)
		printf("collector: trace function on %u of %u threads of "
		       "sub-interpreters\n", s->threads_ours, s->threads_now);
	else if (!s->probe.unobserved)
		printf("collector: every frame that was running at start has returned "
		       "or run all its lines (no trace function)\n");
}

static void print_status(pid_t pid, const struct cov_state *s)
{
	char d[32], t[32], when[64] = "never", line[600];

	if (s->last_dump_ns) {
		time_t sec = s->last_dump_ns / 1000000000;
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&sec, &tm));
	}
	printf("pid %d: covinject loaded, %s%s\n", (int)pid, cli_phase_name(s->phase),
	       s->forked ? " (forked from a collecting parent)" : "");
	if (s->phase == COV_STARTING)
		printf("starting: the collector's thread is %s, for %.1f s\n",
		       cli_step_name(s->step), cli_since(s->step_ns));
	if (s->phase == COV_STOPPING && s->final_written)
		printf("stopping: the final snapshot is written; the collector is removed "
		       "at the next request (uWSGI without --enable-threads)\n");
	printf("python: %d.%d\n", (s->py_hex >> 24) & 255, (s->py_hex >> 16) & 255);
	printf("signals: dump SIG%s, stop SIG%s%s%s\n",
	       cli_signal_name(s->dump_sig, d, sizeof(d)),
	       cli_signal_name(s->stop_sig, t, sizeof(t)),
	       s->chain ? ", chained to the program's handlers" : "",
	       s->handlers_lost ? "; the program replaced covinject's handler (use "
	       "covinject dump/stop, which need no signal)" : "");
	printf("data file: %s\n", s->data_file);
	printf("snapshots: %u written, %u failed, last at %s%s%s\n", s->dumps,
	       s->dump_errors, when, s->last_file[0] ? " to " : "", s->last_file);
	if (s->interval_ms)
		printf("periodic snapshots: every %g s when data changed\n",
		       s->interval_ms / 1000.0);
	else
		printf("periodic snapshots: off\n");
	printf("measured: %u files, %u lines (%u resets)\n", s->files, s->lines,
	       s->resets);
	if (s->tool_id >= 0)
		printf("collector: sys.monitoring tool id %d\n", s->tool_id);
	else if (s->probes)
		print_probes(s);
	else if (s->sweeps)
		printf("collector: trace function on %u of %u threads\n",
		       s->threads_ours, s->threads_now);
	else
		printf("collector: trace function on %u threads (%u skipped: traced "
		       "by another tool)\n", s->threads, s->skipped_threads);
	if (s->tool_id < 0 && !s->probes && s->trace_why[0])
		printf("collector: the trace function, not probes: %s\n", s->trace_why);
	else if (s->tool_id < 0 && !s->probes && s->collector_asked == COV_COLLECTOR_TRACE)
		printf("collector: the trace function, as start --collector trace "
		       "asked\n");
	if (s->interpreters > 1)
		printf("interpreters: %u (%u measured)\n", s->interpreters,
		       s->interps_measured);
	if (s->phase == COV_COLLECTING && s->interps_isolated &&
	    cli_interps_unmeasured(s, 1, line, sizeof(line)))
		printf("not measured: %s\n", line);
	if (s->phase == COV_COLLECTING)
		not_collecting(s, status_line, NULL);
	printf("last error: %s\n", s->error[0] ? s->error : "none");
}

int cli_status(struct cli_opts *o, pid_t pid)
{
	struct proc_status st;
	struct cov_state s;
	int r;

	(void)o;
	if ((r = cli_check_process(pid, "status", &st)))
		return r;
	r = cli_read_state(pid, &s);
	if (r == -ENOENT) {
		printf("pid %d: covinject not loaded\n", (int)pid);
		return EXIT_OK;
	}
	if ((r = cli_need_state(pid, "status", &s)))
		return r;
	if (!cli_state_is_own(pid, &s)) {
		if (s.unhooked)
			printf("pid %d: covinject inherited from its parent (its pid %d), "
			       "forked without Python's after-fork hooks: it records, and "
			       "writes its own file only when it exits normally; no "
			       "dump or stop reaches it (give it a collector of its own "
			       "with: covinject start %d)\n", (int)pid, (int)s.pid,
			       (int)pid);
		else
			printf("pid %d: covinject not collecting (memory inherited from "
			       "its pid %d, forked before collection started)\n",
			       (int)pid, (int)s.pid);
		return EXIT_OK;
	}
	print_status(pid, &s);
	return EXIT_OK;
}
