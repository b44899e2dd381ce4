/*
 * maps.c - read /proc/PID/maps: where each file of the target is mapped.
 *
 * Line format (fs/proc/task_mmu.c, show_map_vma):
 *   start-end perms offset major:minor inode   path
 * The path may be absent (anonymous) or carry " (deleted)" (our memfd does:
 * "/memfd:covinject-payload (deleted)").
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "maps.h"

int maps_parse_line(const char *line, struct map_entry *e)
{
	int pos = 0;
	unsigned maj, min;

	memset(e, 0, sizeof(*e));
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %x:%x %" SCNu64 "%n",
		   &e->start, &e->end, e->perms, &e->offset, &maj, &min,
		   &e->inode, &pos) != 7 || e->end < e->start || strlen(e->perms) != 4)
		return -EINVAL;
	line += pos;
	while (*line == ' ' || *line == '\t')
		line++;
	snprintf(e->path, sizeof(e->path), "%s", line);
	e->path[strcspn(e->path, "\n")] = 0;
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

int maps_is_libc(const char *path)
{
	const char *b = base_name(path);

	return path[0] == '/' && (!strncmp(b, "libc.so", 7) || !strncmp(b, "libc-2.", 7));
}

int maps_is_libdl(const char *path)
{
	const char *b = base_name(path);

	return path[0] == '/' && (!strncmp(b, "libdl.so", 8) || !strncmp(b, "libdl-2.", 8));
}

int maps_is_payload(const char *path)
{
	return !strncmp(path, "/memfd:" PAYLOAD_MEMFD_NAME,
			strlen("/memfd:" PAYLOAD_MEMFD_NAME));
}

int maps_is_python(const char *path)
{
	const char *b = base_name(path);

	if (!strncmp(b, "lib", 3))
		b += 3;
	/* python2.7 too: it is refused by name, not taken for another program */
	return path[0] == '/' && !strncmp(b, "python", 6) && (b[6] == '2' || b[6] == '3');
}

/*
 * The next whole line of f into line, or 0 at the end.  A line longer than
 * the buffer (a path may hold any byte but a newline, which the kernel
 * escapes) is skipped whole: fgets would return its tail as a line of its
 * own, and a path chosen by the target could then pose as a mapping.
 */
int maps_next_line(FILE *f, char *line, int len)
{
	while (fgets(line, len, f)) {
		int c;

		if (strchr(line, '\n') || (c = getc(f)) == EOF || c == '\n')
			return 1;
		while ((c = getc(f)) != EOF && c != '\n')
			;
	}
	return 0;
}

int maps_each(pid_t pid, int (*fn)(const struct map_entry *e, void *arg), void *arg)
{
	char fn_[64], line[MAPS_PATH_MAX + 128];
	struct map_entry e;
	FILE *f;
	int r = 0;

	snprintf(fn_, sizeof(fn_), "/proc/%d/maps", (int)pid);
	if (!(f = fopen(fn_, "re")))
		return -errno;
	while (!r && maps_next_line(f, line, sizeof(line)))
		if (!maps_parse_line(line, &e))
			r = fn(&e, arg);
	fclose(f);
	return r;
}

int maps_find(pid_t pid, maps_match_fn match, struct lib_map *out)
{
	char fn[64], line[MAPS_PATH_MAX + 128];
	struct map_entry e;
	FILE *f;
	int found = 0;

	snprintf(fn, sizeof(fn), "/proc/%d/maps", (int)pid);
	f = fopen(fn, "re");
	if (!f)
		return -errno;
	while (maps_next_line(f, line, sizeof(line))) {
		if (maps_parse_line(line, &e) || !e.path[0] || !match(e.path))
			continue;
		if (!found) {
			if (e.offset != 0)
				continue;
			found = 1;
			out->start = e.start;
			snprintf(out->path, sizeof(out->path), "%s", e.path);
		} else if (strcmp(e.path, out->path)) {
			break;
		}
		out->end = e.end;
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}
