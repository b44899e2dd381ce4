/*
 * main.c - the covinject command: subcommands, options, usage.
 * Usage errors exit 2, failures 1 (README, "Exit status").
 */
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "../payload/versions.h"

/* A printf format: %s is the range of payload/versions.h. */
#define USAGE_TEXT \
	"usage: covinject [--help] [--version] COMMAND [OPTIONS] PID\n" \
	"\n" \
	"Measure line coverage of a running CPython %s process (default\n" \
	"builds, with the GIL).\n" \
	"\n" \
	"commands:\n" \
	"  start PID    load the collector into PID and start collecting\n" \
	"  dump PID     write a snapshot now, wait for it, print its path\n" \
	"  stop PID     final snapshot, remove the collector, print the file\n" \
	"  status PID   what the collector in PID is doing\n" \
	"\n" \
	"'covinject COMMAND --help' describes a command's options.\n"

static const char start_help[] =
	"usage: covinject start [OPTIONS] PID\n"
	"\n"
	"  -o, --output DIR       where snapshots go (default: the current directory)\n"
	"      --source DIR|PKG   measure only files under DIR, or of the package PKG\n"
	"                         as the process would import it (repeatable;\n"
	"                         default: everything but the standard library and\n"
	"                         installed packages)\n"
	"      --include PATTERN  measure only files matching PATTERN (coverage.py\n"
	"                         file patterns; repeatable or comma-separated;\n"
	"                         ignored with --source)\n"
	"      --omit PATTERN     never measure files matching PATTERN (repeatable\n"
	"                         or comma-separated)\n"
	"      --no-import-lines  do not record, in the context \"import\", the lines\n"
	"                         that importing already loaded modules ran\n"
	"      --branch           record branches too (arcs; Python 3.12 and later)\n"
	"      --collector KIND   Python 3.9-3.11: auto (the default: probe where\n"
	"                         it is safe, else trace; status says why), probe\n"
	"                         (bytecode probes: each line costs once) or trace\n"
	"                         (a trace function in every thread); see the README\n"
	"      --watch-window SECONDS  with probes: how long frames that were\n"
	"                         running at start are watched by a trace function\n"
	"                         (default 30; 0: for as long as they run)\n"
	"      --dump-signal SIG  signal that writes a snapshot (default USR1)\n"
	"      --stop-signal SIG  signal that stops collecting (default USR2)\n"
	"      --interval SECONDS snapshot periodically when new lines ran (default\n"
	"                         60; 0 turns it off)\n"
	"      --chain            the program's own handlers of the two signals run\n"
	"                         after covinject's (default: refuse taken signals)\n"
	"      --tree             also every CPython process descended from PID\n"
	"      --timeout SECONDS  how long to wait for the collector (default 10)\n"
	"  -v, --verbose          debug output on stderr\n"
	"\n"
	"SIG is a name (USR1, SIGUSR2, RTMIN+3) or a number.\n";

static const char dump_help[] =
	"usage: covinject dump [--reset] [--tree] [--timeout SECONDS] PID\n"
	"\n"
	"Ask the collector in PID for a snapshot, wait for it (default 10 s) and\n"
	"print the data file's path.  No signal is sent: the request goes straight\n"
	"to the collector.\n"
	"\n"
	"  --reset   then start afresh: the next snapshots hold only what runs from\n"
	"            now on, in a new file (nothing is overwritten)\n"
	"  --tree    PID and every CPython process descended from it\n";

static const char stop_help[] =
	"usage: covinject stop [--tree] [--timeout SECONDS] PID\n"
	"\n"
	"Write the final snapshot, remove the collector from every thread, restore\n"
	"the signal handlers, and print the data file's path.  PID runs on.\n";

static const char status_help[] =
	"usage: covinject status [--tree] PID\n"
	"\n"
	"Print whether covinject is loaded in PID, collecting or stopped, its data\n"
	"file, signals, last snapshot, what it measured, and the last error.\n";

static const struct cli_command commands[] = {
	{ "start", cli_start, start_help, 1, 0 },
	{ "dump", cli_dump, dump_help, 1, 1 },
	{ "stop", cli_stop, stop_help, 1, 1 },
	{ "status", cli_status, status_help, 0, 0 },
};

__attribute__((format(printf, 2, 3)))
static int usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "covinject: %s: %s (see 'covinject %s%s--help')\n",
		cmd ? cmd : "usage", msg, cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

static int signal_opt(const char *cmd, const char *arg, int *out)
{
	const char *why;
	int sig = cli_parse_signal(arg);

	if (sig <= 0)
		return usage_error(cmd, "unknown signal '%s' (use a name such as USR1 "
				   "or RTMIN+3, or a number)", arg);
	if ((why = cli_signal_reserved(sig)))
		return usage_error(cmd, "signal '%s' cannot be used: %s", arg, why);
	*out = sig;
	return 0;
}

static int pattern_opt(const char *cmd, const char *opt, const char *arg,
		       const char **list, int *n)
{
	if (!*arg)
		return usage_error(cmd, "%s needs a pattern", opt);
	if (*n >= 64)
		return usage_error(cmd, "too many %s options", opt);
	list[(*n)++] = arg;
	return 0;
}

/* "start, dump and stop" names cmd */
static int names(const char *list, const char *cmd)
{
	size_t n = strlen(cmd);

	for (const char *p = strstr(list, cmd); p; p = strstr(p + 1, cmd))
		if ((p == list || p[-1] == ' ') && (!p[n] || p[n] == ',' || p[n] == ' '))
			return 1;
	return 0;
}

static const char *opt_name(const struct option *all, int opt)
{
	static char buf[48];

	if (opt < 256) {
		snprintf(buf, sizeof(buf), "-%c", opt);
		return buf;
	}
	for (; all->name; all++)
		if (all->val == opt)
			snprintf(buf, sizeof(buf), "--%s", all->name);
	return buf;
}

enum { OPT_SOURCE = 256, OPT_DUMP_SIG, OPT_STOP_SIG, OPT_TIMEOUT, OPT_TREE,
       OPT_RESET, OPT_CHAIN, OPT_INTERVAL, OPT_INCLUDE, OPT_OMIT, OPT_NO_IMPORT,
       OPT_BRANCH, OPT_COLLECTOR, OPT_WATCH };

/* Which commands may take an option: every one (NULL), or those named. */
static const char *owner(int opt)
{
	switch (opt) {
	case 'o':
		return "start, dump and stop";
	case OPT_SOURCE: case OPT_DUMP_SIG: case OPT_STOP_SIG:
	case OPT_CHAIN: case OPT_INTERVAL: case OPT_INCLUDE: case OPT_OMIT:
	case OPT_NO_IMPORT: case OPT_BRANCH: case OPT_COLLECTOR: case OPT_WATCH:
		return "start";
	case OPT_RESET:
		return "dump";
	}
	return NULL;
}

static int parse(const struct cli_command *c, int argc, char **argv, struct cli_opts *o)
{
	static const struct option all[] = {
		{ "output", required_argument, 0, 'o' },
		{ "source", required_argument, 0, OPT_SOURCE },
		{ "dump-signal", required_argument, 0, OPT_DUMP_SIG },
		{ "stop-signal", required_argument, 0, OPT_STOP_SIG },
		{ "timeout", required_argument, 0, OPT_TIMEOUT },
		{ "tree", no_argument, 0, OPT_TREE },
		{ "reset", no_argument, 0, OPT_RESET },
		{ "chain", no_argument, 0, OPT_CHAIN },
		{ "interval", required_argument, 0, OPT_INTERVAL },
		{ "include", required_argument, 0, OPT_INCLUDE },
		{ "omit", required_argument, 0, OPT_OMIT },
		{ "no-import-lines", no_argument, 0, OPT_NO_IMPORT },
		{ "branch", no_argument, 0, OPT_BRANCH },
		{ "collector", required_argument, 0, OPT_COLLECTOR },
		{ "watch-window", required_argument, 0, OPT_WATCH },
		{ "verbose", no_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 }
	};
	int opt, r;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+:o:vh", all, NULL)) != -1) {
		const char *only = owner(opt);

		if (only && !names(only, c->name))
			return usage_error(c->name, "option '%s' belongs to %s",
					   opt_name(all, opt), only);
		switch (opt) {
		case 'o':
			o->out_dir = optarg;
			o->out_given = 1;
			break;
		case OPT_SOURCE:
			if (o->nsources >= 64)
				return usage_error(c->name, "too many --source options");
			o->sources[o->nsources++] = optarg;
			break;
		case OPT_INCLUDE:
			if ((r = pattern_opt(c->name, "--include", optarg, o->includes,
					     &o->nincludes)))
				return r;
			break;
		case OPT_OMIT:
			if ((r = pattern_opt(c->name, "--omit", optarg, o->omits, &o->nomits)))
				return r;
			break;
		case OPT_NO_IMPORT:
			o->no_import_lines = 1;
			break;
		case OPT_BRANCH:
			o->branch = 1;
			break;
		case OPT_COLLECTOR:
			if ((o->collector = cov_collector_of(optarg)) < 0)
				return usage_error(c->name, "--collector '%s': give auto, "
						   "trace or probe", optarg);
			break;
		case OPT_DUMP_SIG:
			if ((r = signal_opt(c->name, optarg, &o->dump_sig)))
				return r;
			break;
		case OPT_STOP_SIG:
			if ((r = signal_opt(c->name, optarg, &o->stop_sig)))
				return r;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_seconds(optarg, &o->timeout))
				return usage_error(c->name, "--timeout '%s': give a number "
						   "of seconds above 0", optarg);
			break;
		case OPT_INTERVAL:
			if (cli_parse_seconds(optarg, &o->interval) && strcmp(optarg, "0"))
				return usage_error(c->name, "--interval '%s': give a number "
						   "of seconds, or 0 for none", optarg);
			if (!strcmp(optarg, "0"))
				o->interval = 0;
			break;
		case OPT_WATCH:
			if (cli_parse_seconds(optarg, &o->watch_window) && strcmp(optarg, "0"))
				return usage_error(c->name, "--watch-window '%s': give a "
						   "number of seconds, or 0 for as long as "
						   "they run", optarg);
			if (!strcmp(optarg, "0"))
				o->watch_window = 0;
			break;
		case OPT_TREE:
			o->tree = 1;
			break;
		case OPT_RESET:
			o->reset = 1;
			break;
		case OPT_CHAIN:
			o->chain = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			fputs(c->help, stdout);
			exit(EXIT_OK);
		case ':':
			return usage_error(c->name, "option '%s' needs a value",
					   argv[optind - 1]);
		default:
			return usage_error(c->name, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error(c->name, "missing PID");
	if (optind + 1 < argc)
		return usage_error(c->name, "unexpected argument '%s' (one PID only)",
				   argv[optind + 1]);
	if (cli_parse_pid(argv[optind], &o->pid))
		return usage_error(c->name, "'%s' is not a process id (a number from 1 "
				   "to 4194304)", argv[optind]);
	if (o->dump_sig == o->stop_sig)
		return usage_error(c->name, "the dump and stop signals must differ");
	return 0;
}

int main(int argc, char **argv)
{
	struct cli_opts o = {
		.out_dir = ".", .dump_sig = SIGUSR1, .stop_sig = SIGUSR2,
		.timeout = 10, .interval = 60, .watch_window = 30, .argc = argc, .argv = argv,
	};
	char range[32];
	int r;

	if (getuid() != geteuid() || getgid() != getegid()) {
		fprintf(stderr, "covinject: refusing to run set-uid or set-gid\n");
		return EXIT_FAIL;
	}
	if (argc < 2)
		return usage_error(NULL, "missing command");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf(USAGE_TEXT, cov_python_range(range, sizeof(range)));
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("covinject %s\n", COVINJECT_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		if ((r = parse(&commands[i], argc - 1, argv + 1, &o)))
			return r;
		return cli_run(&o, &commands[i]);
	}
	return usage_error(NULL, "unknown command '%s' (commands: start, dump, stop, "
			   "status)", argv[1]);
}
