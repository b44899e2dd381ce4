/*
 * config.h - the configuration text the CLI hands to cov_start, one
 * "key=value" per line (payload/config.c):
 *	out=/abs/dir		where snapshots go, as the CLI sees it (required)
 *	out_fd=1		the directory itself arrives as an open fd on the
 *				socket cov_start publishes (cov_state.dir_sock);
 *				out= is then only what status prints
 *	gil_at_requests=1	the process lets other threads have the GIL only
 *				while it runs Python (uWSGI without threads): no
 *				sweep, which would spend that chance
 *	source=/abs/dir		limit measurement to files under it (repeatable)
 *	dump_signal=10		stop_signal=12
 *	chain=1			call the handlers the program had, after ours
 *	interval=60		periodic snapshot every 60 s when data changed; 0 off
 *	argv=...		recorded in the data file's meta table
 *	source_pkg=a.b		measure only that importable package (repeatable),
 *				resolved in the target (payload/modules.c)
 *	include=PATTERN		omit=PATTERN	coverage.py file patterns (repeatable)
 *	import_lines=0		no "import" context (default 1)
 *	branch=1		record arcs (3.12+)
 *	collector=auto		--collector: auto, trace or probe (3.9-3.11;
 *				enum cov_collector)
 *	watch_window=30		with it: frames running at start are watched by
 *				the trace function for at most 30 s; 0: while
 *				they run
 */
#ifndef COVINJECT_CONFIG_H
#define COVINJECT_CONFIG_H

#define COV_CONFIG_MAX 12288
#define COV_MAX_SOURCES 64
#define COV_MAX_PATTERNS 64

struct cov_config {
	const char *out_dir;
	const char *sources[COV_MAX_SOURCES];
	int nsources;
	int dump_sig, stop_sig;
	int chain;		/* chain=1: call the previous handlers too */
	unsigned interval_ms;	/* interval=SECONDS (decimal): periodic snapshots */
	const char *argv;
	const char *source_pkgs[COV_MAX_SOURCES];	/* NULL-terminated */
	int nsource_pkgs;
	const char *includes[COV_MAX_PATTERNS];		/* NULL-terminated */
	const char *omits[COV_MAX_PATTERNS];		/* NULL-terminated */
	int nincludes, nomits;
	int import_lines;	/* record the import context (default 1) */
	int branch;		/* record arcs */
	int out_fd;		/* out_fd=1: receive the directory as an fd */
	int gil_at_requests;	/* the GIL is had only while a request runs */
	int collector;		/* enum cov_collector (3.9-3.11) */
	unsigned watch_ms;	/* watch_window=SECONDS, 0: unlimited */
};

/* Parses text in place (it must outlive cfg): 0, or -1 if invalid. */
int cov_config_parse(char *text, struct cov_config *cfg);

#endif
