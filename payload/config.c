/* config.c - parse the configuration text of config.h, in place, no malloc. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"
#include "cov_state.h"

static int parse_sig(const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);

	return (*end || n <= 0 || n >= NSIG || n == SIGKILL || n == SIGSTOP) ? -1 : (int)n;
}

/* "60", "0.5": seconds as a decimal, to milliseconds; 0 means off. */
static int parse_interval(const char *v, unsigned *ms)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *end || !(d >= 0) || d > 86400)
		return -1;
	*ms = (unsigned)(d * 1000 + 0.5);
	return 0;
}

/* Append v to a NULL-terminated list of max slots; -1 when full. */
static int append(const char **list, int *n, int max, const char *v)
{
	if (*n >= max - 1)
		return -1;
	list[(*n)++] = v;
	return 0;
}

/* "pkg", "pkg.sub": dotted Python identifiers (ASCII). */
static int module_name(const char *v)
{
	int prev_dot = 1;

	for (; *v; v++) {
		if (*v == '.') {
			if (prev_dot)
				return 0;
		} else if (!(*v == '_' || (*v >= 'a' && *v <= 'z') ||
			     (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9' && !prev_dot))) {
			return 0;
		}
		prev_dot = *v == '.';
	}
	return !prev_dot;
}

static int parse_flag(const char *v, int *out)
{
	if (strcmp(v, "0") && strcmp(v, "1"))
		return -1;
	*out = v[0] == '1';
	return 0;
}

int cov_config_parse(char *text, struct cov_config *cfg)
{
	char *line, *next, *eq;

	memset(cfg, 0, sizeof(*cfg));
	cfg->argv = "";
	cfg->import_lines = 1;
	for (line = text; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (!(eq = strchr(line, '=')))
			return -1;
		*eq++ = 0;
		if (!strcmp(line, "out"))
			cfg->out_dir = eq;
		else if (!strcmp(line, "source") && cfg->nsources < COV_MAX_SOURCES - 1)
			cfg->sources[cfg->nsources++] = eq;
		else if (!strcmp(line, "dump_signal"))
			cfg->dump_sig = parse_sig(eq);
		else if (!strcmp(line, "stop_signal"))
			cfg->stop_sig = parse_sig(eq);
		else if (!strcmp(line, "chain"))
			cfg->chain = !strcmp(eq, "1");
		else if (!strcmp(line, "interval")) {
			if (parse_interval(eq, &cfg->interval_ms))
				return -1;
		}
		else if (!strcmp(line, "argv"))
			cfg->argv = eq;
		else if (!strcmp(line, "source_pkg")) {
			if (!module_name(eq) || append(cfg->source_pkgs,
				&cfg->nsource_pkgs, COV_MAX_SOURCES, eq))
				return -1;
		} else if (!strcmp(line, "include")) {
			if (!*eq || append(cfg->includes, &cfg->nincludes,
					   COV_MAX_PATTERNS, eq))
				return -1;
		} else if (!strcmp(line, "omit")) {
			if (!*eq || append(cfg->omits, &cfg->nomits,
					   COV_MAX_PATTERNS, eq))
				return -1;
		} else if (!strcmp(line, "import_lines")) {
			if (parse_flag(eq, &cfg->import_lines))
				return -1;
		} else if (!strcmp(line, "branch")) {
			if (parse_flag(eq, &cfg->branch))
				return -1;
		} else if (!strcmp(line, "out_fd")) {
			if (parse_flag(eq, &cfg->out_fd))
				return -1;
		} else if (!strcmp(line, "watch_window")) {
			if (parse_interval(eq, &cfg->watch_ms))
				return -1;
		} else if (!strcmp(line, "collector")) {
			if ((cfg->collector = cov_collector_of(eq)) < 0)
				return -1;
		} else if (!strcmp(line, "gil_at_requests")) {
			if (parse_flag(eq, &cfg->gil_at_requests))
				return -1;
		}
		else
			return -1;
	}
	if (!cfg->out_dir || cfg->out_dir[0] != '/' || cfg->dump_sig <= 0 ||
	    cfg->stop_sig <= 0 || cfg->dump_sig == cfg->stop_sig)
		return -1;
	for (int i = 0; i < cfg->nsources; i++)
		if (cfg->sources[i][0] != '/')
			return -1;
	return 0;
}
