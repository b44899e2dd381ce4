/*
 * stat_ppid.c - libFuzzer harness for cli/proc.c's cli_stat_ppid(): the
 * text of /proc/PID/stat, whose second field (the command name, in
 * parentheses) is chosen by the process and may hold ") " itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	pid_t ppid;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	(void)cli_stat_ppid(text, &ppid);
	free(text);
	return 0;
}
