/* maps.h - /proc/PID/maps parsing (inject/maps.c). */
#ifndef COVINJECT_MAPS_H
#define COVINJECT_MAPS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define MAPS_PATH_MAX 512

struct map_entry {
	uint64_t start, end, offset, inode;
	char perms[5];
	char path[MAPS_PATH_MAX];
};

/* One mapped file of the target: where its ELF header is mapped. */
struct lib_map {
	uint64_t start;		/* start of the mapping at file offset 0 */
	uint64_t end;		/* end of its last mapping */
	char path[MAPS_PATH_MAX];
};

typedef int (*maps_match_fn)(const char *path);

/* 0, or -EINVAL for a line that is not a maps line. */
int maps_parse_line(const char *line, struct map_entry *e)
	__attribute__((warn_unused_result));

/* The first file whose path matches: 0, -ENOENT, or -errno from /proc. */
int maps_find(pid_t pid, maps_match_fn match, struct lib_map *out)
	__attribute__((warn_unused_result));

/* The next whole line of a maps file, or 0 at its end; longer lines are
 * skipped, never split (a path could otherwise pose as a mapping). */
int maps_next_line(FILE *f, char *line, int len);

/* fn on every mapping of pid until it returns nonzero, which is returned;
 * 0 at the end, -errno if the maps cannot be read. */
int maps_each(pid_t pid, int (*fn)(const struct map_entry *e, void *arg), void *arg);

/* Path predicates, on the basename (or the memfd name). */
int maps_is_libc(const char *path);
int maps_is_libdl(const char *path);
int maps_is_payload(const char *path);
int maps_is_python(const char *path);

#define PAYLOAD_MEMFD_NAME "covinject-payload"

#endif
