/*
 * maps_line.c - libFuzzer harness for inject/maps.c: one line of the
 * target's /proc/PID/maps (maps_find() reads them with fgets into a buffer
 * of MAPS_PATH_MAX + 128 bytes, so a line is a NUL-terminated string).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../inject/maps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct map_entry e;

	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = 0;
	if (maps_parse_line(line, &e) == 0) {
		if (e.end < e.start || strlen(e.perms) != 4 ||
		    memchr(e.path, 0, sizeof(e.path)) == NULL ||
		    strchr(e.path, '\n'))
			abort();
		/* The predicates maps_find() applies to the path. */
		(void)(maps_is_libc(e.path) + maps_is_libdl(e.path) +
		       maps_is_payload(e.path) + maps_is_python(e.path));
	}
	free(line);
	return 0;
}
