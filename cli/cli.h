/* cli.h - the covinject command: shared declarations of cli/. */
#ifndef COVINJECT_CLI_H
#define COVINJECT_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "../payload/cov_state.h"

#define COVINJECT_VERSION "0.1.0"

/* Exit statuses (README, "Exit status"). */
#define EXIT_OK		0
#define EXIT_FAIL	1
#define EXIT_USAGE	2

struct cli_opts {
	const char *out_dir;
	int out_given;		/* -o was given (dump, stop: a new directory) */
	int gil_at_requests;	/* uWSGI without threads: the GIL only at requests */
	const char *sources[64];
	int nsources;
	const char *includes[64], *omits[64];	/* coverage.py file patterns */
	int nincludes, nomits;
	int no_import_lines;	/* no "import" context */
	int branch;		/* record arcs (3.12+) */
	int collector;		/* --collector: enum cov_collector (3.9-3.11) */
	double watch_window;	/* seconds; 0: while they run */
	int dump_sig, stop_sig;
	double timeout;
	double interval;	/* periodic snapshots, seconds; 0 off */
	int chain, reset, tree;
	int verbose;
	pid_t pid;
	int argc;
	char **argv;
};

/* /proc/PID/status, the fields we use. */
struct proc_status {
	char name[64];
	char state;
	pid_t tracer;
	uid_t uid, euid;
	gid_t gid, egid;
	gid_t groups[64];
	int ngroups;
	uint64_t sigcgt, sigign;
	int kthread;
	pid_t nspid;		/* the pid it knows itself by: NSpid's last field */
	uint64_t capeff;	/* effective capabilities */
	int seccomp;		/* 0 none, 1 strict, 2 filter */
	int nonewprivs;
	uint64_t starttime;	/* field 22 of /proc/PID/stat: tells reused pids apart */
};

int cli_parse_signal(const char *s);
const char *cli_signal_name(int sig, char *buf, size_t len);
const char *cli_signal_reserved(int sig);
int cli_parse_pid(const char *s, pid_t *pid);
int cli_parse_seconds(const char *s, double *out);

int cli_proc_status(pid_t pid, struct proc_status *st);
int cli_proc_status_parse(const char *text, struct proc_status *st);
int cli_dir_writable_by(const char *dir, const struct proc_status *st);

/* 0 and the block, -ENOENT if no payload, -EPROTO if not ours. */
int cli_read_state(pid_t pid, struct cov_state *out);
/* s describes pid itself, not a parent whose memory pid inherited. */
int cli_state_is_own(pid_t pid, const struct cov_state *s);

struct cli_command {
	const char *name;
	int (*run)(struct cli_opts *, pid_t);
	const char *help;
	int locks;		/* takes the per-process lock */
	int needs_collecting;	/* --tree skips descendants not collecting */
};

int cli_start(struct cli_opts *o, pid_t pid);
int cli_dump(struct cli_opts *o, pid_t pid);
int cli_stop(struct cli_opts *o, pid_t pid);
int cli_status(struct cli_opts *o, pid_t pid);
/* The interpreters of s not measured, in words, the isolated ones (never
 * measurable) too or not; 0 if none is left to say. */
int cli_interps_unmeasured(const struct cov_state *s, int isolated, char *buf,
			   size_t len);

/* tree.c */
int cli_run(struct cli_opts *o, const struct cli_command *c);
int cli_stat_ppid(const char *stat, pid_t *ppid);

/* paths.c */
char *cli_real_dir(const char *given, char *out, size_t len);
int cli_target_path(pid_t pid, const char *path, char *out, size_t len);
int cli_out_dir(const char *cmd, pid_t pid, const char *given,
		const struct proc_status *st, char *dir, size_t len, int *by_fd);
int cli_send_dir(pid_t pid, const char *cmd, int dir_sock, const char *dir);

/* access.c */
void cli_access_hint(pid_t pid, const struct proc_status *st, char *buf, size_t len);

/* uwsgi.c */
int cli_uwsgi_without_threads(pid_t pid);

/* needs.c */
int cli_target_has_sqlite(pid_t pid);
int cli_target_has_proc(pid_t pid);

/* util.c */
double cli_now(void);
const char *cli_phase_name(uint32_t phase);
const char *cli_step_name(uint32_t step);
double cli_since(int64_t ns);
int cli_check_process(pid_t pid, const char *cmd, struct proc_status *st);
int cli_need_state(pid_t pid, const char *cmd, struct cov_state *s);
int cli_lock(struct cli_opts *o, pid_t pid, const char *cmd);
int cli_same_process(pid_t pid, const char *cmd, uint64_t starttime);
int cli_stat_starttime(const char *stat, uint64_t *starttime);
int cli_is_python(pid_t pid);

void cli_err(pid_t pid, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cli_debug(struct cli_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
