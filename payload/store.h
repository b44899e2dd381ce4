/*
 * store.h - executed lines, per file, as bit sets (payload/store.c).
 * Every function is called with the GIL held: the GIL is the lock.
 */
#ifndef COVINJECT_STORE_H
#define COVINJECT_STORE_H

#include <stddef.h>
#include <stdint.h>

struct cov_file {
	char *path;		/* absolute, symlinks resolved */
	int in_scope;
	uint32_t nbytes;	/* size of bits */
	uint32_t nlines;	/* bits set */
	uint8_t *bits;		/* bit (n % 8) of byte n / 8: line n ran */
	struct cov_file *next;
};

/* What to measure: everything but the stdlib and installed packages, or
 * only what lies under one of the source directories. */
struct cov_scope {
	const char *stdlib;		/* realpath of the stdlib directory */
	const char *const *sources;	/* NULL-terminated, realpaths */
};

/* A copy of the data, made under the GIL and written without it. */
struct cov_snap_file {
	char *path;
	uint8_t *bits;
	uint32_t nbytes;
};

struct cov_snap {
	struct cov_snap_file *files;
	size_t n;
};

void cov_store_init(const struct cov_scope *scope);

/* The file for a filename object (hot path), or NULL if never seen. */
struct cov_file *cov_store_lookup(const void *key);

/* First sight of key (a str object the caller holds a reference on). */
struct cov_file *cov_store_add(const void *key, const char *filename);

static inline void cov_store_mark(struct cov_file *f, int line);

/* Forget the lines, keep the files (no allocation, no Python call). */
void cov_store_zero(void);

/* Forget everything; release(key) is called for every key added. */
void cov_store_clear(void (*release)(const void *key));

int cov_store_snapshot(struct cov_snap *s);
void cov_snap_free(struct cov_snap *s);
void cov_store_counts(uint32_t *files, uint32_t *lines);

/* Pure helpers, unit-tested. */
int cov_path_in_scope(const struct cov_scope *scope, const char *path);
int cov_grow_mark(struct cov_file *f, int line);

static inline void cov_store_mark(struct cov_file *f, int line)
{
	uint32_t byte = (uint32_t)line >> 3;
	uint8_t bit = 1u << (line & 7);

	if (line <= 0)
		return;
	if (byte >= f->nbytes) {
		cov_grow_mark(f, line);
		return;
	}
	if (!(f->bits[byte] & bit)) {
		f->bits[byte] |= bit;
		f->nlines++;
	}
}

#endif
