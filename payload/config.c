/* config.c - parse the configuration text of config.h, in place, no malloc. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "config.h"

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

int cov_config_parse(char *text, struct cov_config *cfg)
{
	char *line, *next, *eq;

	memset(cfg, 0, sizeof(*cfg));
	cfg->argv = "";
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
