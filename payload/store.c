/*
 * store.c - the line store.  Filename objects (the interpreter's str
 * objects, which we keep a reference on so their address is never reused)
 * map to files through an open-addressing table: the hot path is one hash
 * and usually one probe.  Files are found by path only on first sight.
 *
 * Bits are numbits as coverage.py stores them (coverage/numbits.py):
 * line n is bit n % 8 of byte n / 8.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store.h"

struct slot {
	const void *key;
	struct cov_file *file;
};

static struct slot *slots;
static size_t cap, used;
static struct cov_file *files;
static const struct cov_scope *scope;

void cov_store_init(const struct cov_scope *s)
{
	scope = s;
}

static size_t hash_ptr(const void *p)
{
	return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ULL);
}

struct cov_file *cov_store_lookup(const void *key)
{
	size_t i;

	if (!cap)
		return NULL;
	for (i = hash_ptr(key) & (cap - 1); slots[i].key; i = (i + 1) & (cap - 1))
		if (slots[i].key == key)
			return slots[i].file;
	return NULL;
}

static int insert(const void *key, struct cov_file *f)
{
	size_t i;

	if ((used + 1) * 2 > cap) {
		size_t ncap = cap ? cap * 2 : 1024;
		struct slot *n = calloc(ncap, sizeof(*n));

		if (!n)
			return -1;
		for (size_t j = 0; j < cap; j++) {
			if (!slots[j].key)
				continue;
			for (i = hash_ptr(slots[j].key) & (ncap - 1); n[i].key;
			     i = (i + 1) & (ncap - 1))
				;
			n[i] = slots[j];
		}
		free(slots);
		slots = n;
		cap = ncap;
	}
	for (i = hash_ptr(key) & (cap - 1); slots[i].key; i = (i + 1) & (cap - 1))
		;
	slots[i].key = key;
	slots[i].file = f;
	used++;
	return 0;
}

static int under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 0 && dir[n - 1] == '/')
		n--;	/* "/srv/app/" is "/srv/app"; "/" becomes "" */
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == 0);
}

int cov_path_in_scope(const struct cov_scope *s, const char *path)
{
	if (path[0] != '/')
		return 0;	/* "<string>", "<frozen ...>": no source file */
	if (s->sources && s->sources[0]) {
		for (const char *const *d = s->sources; *d; d++)
			if (under(path, *d))
				return 1;
		return 0;
	}
	if (strstr(path, "/site-packages/") || strstr(path, "/dist-packages/"))
		return 0;
	return !(s->stdlib && s->stdlib[0] && under(path, s->stdlib));
}

/* Absolute, with symlinks resolved when the file exists (coverage.py
 * records real paths too). */
static char *resolve_path(const char *filename)
{
	char buf[PATH_MAX], cwd[PATH_MAX];

	if (filename[0] == '<')
		return strdup(filename);
	if (realpath(filename, buf))
		return strdup(buf);
	if (filename[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return strdup(filename);
	if ((size_t)snprintf(buf, sizeof(buf), "%s/%s", cwd, filename) >= sizeof(buf))
		return strdup(filename);
	return strdup(buf);
}

struct cov_file *cov_store_add(const void *key, const char *filename)
{
	struct cov_file *f;
	char *path = resolve_path(filename);

	if (!path)
		return NULL;
	for (f = files; f; f = f->next)
		if (!strcmp(f->path, path))
			break;
	if (f) {
		free(path);
	} else {
		if (!(f = calloc(1, sizeof(*f)))) {
			free(path);
			return NULL;
		}
		f->path = path;
		f->in_scope = cov_path_in_scope(scope, path);
		f->next = files;
		files = f;
	}
	return insert(key, f) ? NULL : f;
}

int cov_grow_mark(struct cov_file *f, int line)
{
	uint32_t need = ((uint32_t)line >> 3) + 1;
	uint32_t n = f->nbytes ? f->nbytes : 64;
	uint8_t *b;

	while (n < need)
		n *= 2;
	if (!(b = realloc(f->bits, n)))
		return -1;
	memset(b + f->nbytes, 0, n - f->nbytes);
	f->bits = b;
	f->nbytes = n;
	cov_store_mark(f, line);
	return 0;
}

void cov_store_zero(void)
{
	for (struct cov_file *f = files; f; f = f->next) {
		if (f->bits)
			memset(f->bits, 0, f->nbytes);
		f->nlines = 0;
	}
}

void cov_store_clear(void (*release)(const void *key))
{
	struct cov_file *f, *next;

	for (size_t i = 0; i < cap; i++)
		if (slots[i].key && release)
			release(slots[i].key);
	free(slots);
	slots = NULL;
	cap = used = 0;
	for (f = files; f; f = next) {
		next = f->next;
		free(f->path);
		free(f->bits);
		free(f);
	}
	files = NULL;
}

void cov_store_counts(uint32_t *nfiles, uint32_t *nlines)
{
	*nfiles = *nlines = 0;
	for (struct cov_file *f = files; f; f = f->next) {
		if (f->in_scope && f->nlines) {
			(*nfiles)++;
			*nlines += f->nlines;
		}
	}
}

int cov_store_snapshot(struct cov_snap *s)
{
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	for (struct cov_file *f = files; f; f = f->next)
		n += f->in_scope && f->nlines;
	if (n && !(s->files = calloc(n, sizeof(*s->files))))
		return -1;
	for (struct cov_file *f = files; f; f = f->next) {
		struct cov_snap_file *sf;

		if (!f->in_scope || !f->nlines)
			continue;
		sf = &s->files[s->n];
		sf->path = strdup(f->path);
		sf->bits = malloc(f->nbytes);
		if (!sf->path || !sf->bits) {
			free(sf->path);
			free(sf->bits);
			cov_snap_free(s);
			return -1;
		}
		memcpy(sf->bits, f->bits, f->nbytes);
		sf->nbytes = f->nbytes;
		while (sf->nbytes && !sf->bits[sf->nbytes - 1])
			sf->nbytes--;	/* numbits carry no trailing zero bytes */
		s->n++;
	}
	return 0;
}

void cov_snap_free(struct cov_snap *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->files[i].path);
		free(s->files[i].bits);
	}
	free(s->files);
	memset(s, 0, sizeof(*s));
}
