/*
 * uwsgi.c - does a uWSGI process let other threads take the GIL?
 *
 * Without --enable-threads (or --threads N, which implies it), uWSGI's
 * Python plugin never releases the GIL around its own C code, so the
 * collector's thread could never run.  We judge from what the process was
 * given: its options (exact tokens: --enable-threads, -T, --threads N,
 * --enable-threads=BOOL), its environment (UWSGI_ENABLE_THREADS,
 * UWSGI_THREADS: uWSGI reads every option from UWSGI_<NAME>), and the
 * configuration files it names (--ini, --yaml, --json, --xml, or a bare
 * file argument), read through /proc/PID/root and relative to its cwd.
 * A configuration we cannot read decides nothing: then we go ahead.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

enum { NO, YES, UNKNOWN };

static ssize_t slurp(const char *fn, char *buf, size_t len)
{
	int fd = open(fn, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

static int truthy(const char *v)
{
	return !*v || !strncasecmp(v, "1", 1) || !strncasecmp(v, "true", 4) ||
	       !strncasecmp(v, "yes", 3) || !strncasecmp(v, "on", 2) ||
	       (isdigit((unsigned char)*v) && atoi(v) > 0);
}

/* A configuration file names enable-threads or threads with a true value. */
static int config_says(pid_t pid, const char *path)
{
	char fn[4200], text[65536];
	const char *p = text;

	snprintf(fn, sizeof(fn), "/proc/%d/%s%s", (int)pid, path[0] == '/' ? "root" :
		 "cwd/", path);
	if (slurp(fn, text, sizeof(text)) < 0)
		return UNKNOWN;
	while ((p = strstr(p, "threads"))) {
		const char *v = p + 7;

		while (*v == ' ' || *v == '\t' || *v == '=' || *v == ':' || *v == '"' ||
		       *v == '>')
			v++;
		/* the key "threads" or "enable-threads", not "offload-threads" */
		if (truthy(v) && (p == text || strchr(" \t\r\n<\"{,", p[-1]) ||
				  (p - text >= 7 && !strncmp(p - 7, "enable-", 7) &&
				   (p - 7 == text || strchr(" \t\r\n<\"{,", p[-8])))))
			return YES;
		p += 7;
	}
	return NO;
}

static int is_config(const char *a)
{
	static const char *const ext[] = { ".ini", ".yaml", ".yml", ".json", ".xml", NULL };
	size_t n = strlen(a);

	for (int i = 0; ext[i]; i++)
		if (n > strlen(ext[i]) && !strcmp(a + n - strlen(ext[i]), ext[i]))
			return 1;
	return 0;
}

static int args_say(pid_t pid, const char *args, ssize_t n)
{
	const char *prev = "";
	int r = NO;

	for (const char *a = args; a < args + n; prev = a, a += strlen(a) + 1) {
		const char *next = a + strlen(a) + 1 < args + n ? a + strlen(a) + 1 : "";

		if (!strcmp(a, "--enable-threads") || !strcmp(a, "-T"))
			return YES;
		if (!strncmp(a, "--enable-threads=", 17) && truthy(a + 17))
			return YES;
		if ((!strcmp(a, "--threads") && atoi(next) > 0) ||
		    (!strncmp(a, "--threads=", 10) && atoi(a + 10) > 0))
			return YES;
		if (!strcmp(a, "--ini") || !strcmp(a, "--yaml") || !strcmp(a, "--json") ||
		    !strcmp(a, "--xml") || (a != args && a[0] != '-' && is_config(a) &&
					      prev[0] != '-')) {
			const char *file = a[0] == '-' ? next : a;
			int c = config_says(pid, file);

			if (c == YES)
				return YES;
			if (c == UNKNOWN)
				r = UNKNOWN;
		}
		if (!strcmp(a, "--emperor"))
			r = UNKNOWN;
	}
	return r;
}

static int environ_says(pid_t pid)
{
	char fn[64], env[65536];
	ssize_t n;

	snprintf(fn, sizeof(fn), "/proc/%d/environ", (int)pid);
	if ((n = slurp(fn, env, sizeof(env))) < 0)
		return UNKNOWN;
	for (const char *e = env; e < env + n; e += strlen(e) + 1)
		if ((!strncmp(e, "UWSGI_ENABLE_THREADS=", 21) && truthy(e + 21)) ||
		    (!strncmp(e, "UWSGI_THREADS=", 14) && atoi(e + 14) > 0))
			return YES;
	return NO;
}

int cli_uwsgi_without_threads(pid_t pid)
{
	char fn[64], args[16384];
	const char *base;
	ssize_t n;

	snprintf(fn, sizeof(fn), "/proc/%d/cmdline", (int)pid);
	if ((n = slurp(fn, args, sizeof(args))) <= 0)
		return 0;
	base = strrchr(args, '/') ? strrchr(args, '/') + 1 : args;
	if (strncmp(base, "uwsgi", 5))
		return 0;
	return args_say(pid, args, n) == NO && environ_says(pid) == NO;
}
