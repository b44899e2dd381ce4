/*
 * proc_status.c - libFuzzer harness for cli/proc.c: the text of another
 * process's /proc/PID/status (cli_proc_status() reads at most 8191 bytes
 * and terminates them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct proc_status st;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	if (cli_proc_status_parse(text, &st) == 0 &&
	    (memchr(st.name, 0, sizeof(st.name)) == NULL || st.ngroups < 0 ||
	     st.ngroups > (int)(sizeof(st.groups) / sizeof(st.groups[0]))))
		abort();
	free(text);
	return 0;
}
