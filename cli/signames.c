/*
 * signames.c - signal names for the command line: "USR1", "SIGUSR1",
 * "usr1", "10", "RTMIN+3", "SIGRTMAX-1".  Reserved signals (those that
 * cannot be caught, that report faults, that the kernel or glibc raise on
 * their own, or glibc's internal real-time ones) are refused.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cli.h"

static const struct {
	const char *name;
	int sig;
} names[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
	{ "ILL", SIGILL }, { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },
	{ "BUS", SIGBUS }, { "FPE", SIGFPE }, { "KILL", SIGKILL },
	{ "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM },
	{ "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT },
	{ "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
	{ "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU },
	{ "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF },
	{ "WINCH", SIGWINCH }, { "IO", SIGIO }, { "PWR", SIGPWR },
	{ "SYS", SIGSYS },
};

static int number(const char *s, int *out)
{
	char *end;
	long n;

	if (!isdigit((unsigned char)*s))
		return -1;
	n = strtol(s, &end, 10);
	if (*end || n > 1000)
		return -1;
	*out = (int)n;
	return 0;
}

int cli_parse_signal(const char *s)
{
	int n = 0;

	if (!s || !*s)
		return -1;
	if (!number(s, &n))
		return n > 0 && n < NSIG ? n : -1;
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	if (!strncasecmp(s, "RTMIN", 5) || !strncasecmp(s, "RTMAX", 5)) {
		int base = toupper((unsigned char)s[3]) == 'I' ? SIGRTMIN : SIGRTMAX;

		if (!s[5])
			return base;
		if ((s[5] != '+' && s[5] != '-') || number(s + 6, &n))
			return -1;
		n = s[5] == '+' ? base + n : base - n;
		return n >= SIGRTMIN && n <= SIGRTMAX ? n : -1;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(s, names[i].name))
			return names[i].sig;
	return -1;
}

const char *cli_signal_name(int sig, char *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].sig == sig) {
			snprintf(buf, len, "%s", names[i].name);
			return buf;
		}
	if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, len, "RTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(buf, len, "%d", sig);
	return buf;
}

/*
 * Why sig cannot be a covinject signal, or NULL if it can.  Faults must
 * reach their default action; the kernel sends CHLD, PIPE, WINCH, URG...
 * for its own reasons (each would cause a spurious snapshot); glibc uses
 * the real-time signals below SIGRTMIN for threads and timers.
 */
const char *cli_signal_reserved(int sig)
{
	switch (sig) {
	case SIGKILL: case SIGSTOP:
		return "it cannot be caught";
	case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: case SIGTRAP:
	case SIGSYS: case SIGABRT:
		return "it reports a fault";
	case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH: case SIGPIPE:
	case SIGTSTP: case SIGTTIN: case SIGTTOU: case SIGIO: case SIGXCPU:
	case SIGXFSZ: case SIGINT: case SIGTERM: case SIGQUIT: case SIGHUP:
		return "the kernel or the terminal sends it for other reasons";
	}
	if (sig > SIGSYS && sig < SIGRTMIN)
		return "glibc reserves it";
	return NULL;
}
