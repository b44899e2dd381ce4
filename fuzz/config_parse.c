/*
 * config_parse.c - libFuzzer harness for payload/config.c: the text that
 * cov_start() receives (at most COV_CONFIG_MAX bytes).  cov_config_parse()
 * writes into it, so it gets a NUL-terminated copy that outlives cfg.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../payload/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every string of cfg points into [text, text + size]. */
static int inside(const char *p, const char *text, size_t size)
{
	return p >= text && p <= text + size && strlen(p) <= size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct cov_config cfg;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (cov_config_parse(text, &cfg) == 0) {
		if (!inside(cfg.out_dir, text, size) || cfg.out_dir[0] != '/' ||
		    cfg.dump_sig <= 0 || cfg.stop_sig <= 0 ||
		    cfg.dump_sig == cfg.stop_sig || cfg.nsources < 0 ||
		    cfg.nsources >= COV_MAX_SOURCES ||
		    cfg.interval_ms > 86400000u)
			abort();
		for (int i = 0; i < cfg.nsources; i++)
			if (!inside(cfg.sources[i], text, size) ||
			    cfg.sources[i][0] != '/')
				abort();
	}
	free(text);
	return 0;
}
