/*
 * config.h - the configuration text the CLI hands to cov_start, one
 * "key=value" per line (payload/config.c):
 *	out=/abs/dir		where snapshots go (required)
 *	source=/abs/dir		limit measurement to files under it (repeatable)
 *	dump_signal=10		stop_signal=12
 *	chain=1			call the handlers the program had, after ours
 *	interval=60		periodic snapshot every 60 s when data changed; 0 off
 *	argv=...		recorded in the data file's meta table
 */
#ifndef COVINJECT_CONFIG_H
#define COVINJECT_CONFIG_H

#define COV_CONFIG_MAX 12288
#define COV_MAX_SOURCES 64

struct cov_config {
	const char *out_dir;
	const char *sources[COV_MAX_SOURCES];
	int nsources;
	int dump_sig, stop_sig;
	int chain;		/* chain=1: call the previous handlers too */
	unsigned interval_ms;	/* interval=SECONDS (decimal): periodic snapshots */
	const char *argv;
};

/* Parses text in place (it must outlive cfg): 0, or -1 if invalid. */
int cov_config_parse(char *text, struct cov_config *cfg);

#endif
