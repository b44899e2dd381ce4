/*
 * store.h - executed lines, per file, as bit sets (payload/store.c).
 * Every function is called with the GIL held: the GIL is the lock (but for
 * cov_store_snapshot_nogil: see store.c, store_lock).  The
 * running totals are also stored, as each changes, into the two words
 * given to cov_store_publish (the status block), with relaxed atomic
 * stores, so a reader outside the process sees them live.
 */
#ifndef COVINJECT_STORE_H
#define COVINJECT_STORE_H

#include <stddef.h>
#include <stdint.h>

/* Line numbers as numbits: bit (n % 8) of byte n / 8 is line n. */
struct cov_bits {
	uint8_t *bits;
	uint32_t nbytes;	/* size of bits */
	uint32_t nlines;	/* bits set */
};

struct cov_file {
	char *path;		/* absolute, symlinks resolved */
	int in_scope;
	uint32_t nbytes;	/* size of bits */
	uint32_t nlines;	/* bits set */
	uint8_t *bits;		/* the lines that ran (context "") */
	struct cov_bits imported;	/* context "import": derived, see modules.c */
	int snap_index;		/* in the last snapshot's files, or -1 */
	struct cov_file *next;
};

/*
 * What to measure, by coverage.py's rules (coverage/inorout.py,
 * check_include_omit_etc): with sources, only files under one of them (and,
 * unless a source itself is an installed-packages directory, not installed
 * packages); else with include patterns, only files matching one; else
 * everything but the stdlib and installed packages.  Then never a file
 * matching an omit pattern.
 */
struct cov_scope {
	const char *stdlib;		/* realpath of the stdlib directory */
	const char *const *sources;	/* NULL-terminated realpaths: dirs or files */
};

/* --include and --omit: NULL-terminated fnmatch patterns, or NULL. */
struct cov_filter {
	const char *const *includes;
	const char *const *omits;
};

/* A copy of the data, made under the GIL and written without it. */
struct cov_snap_file {
	char *path;
	uint8_t *bits;
	uint32_t nbytes;
	uint8_t *ibits;		/* the import context, or NULL */
	uint32_t inbytes;
	int32_t *arcs;		/* --branch: (from, to) pairs (arcs.c) */
	uint32_t narcs, arcs_cap;
};

struct cov_snap {
	struct cov_snap_file *files;
	size_t n;
	int has_arcs;		/* written as arcs, not lines */
};

void cov_store_init(const struct cov_scope *scope);
void cov_store_set_filter(const struct cov_filter *filter);

/* The file for a filename object (hot path), or NULL if never seen. */
struct cov_file *cov_store_lookup(const void *key);

/* First sight of key (a str object the caller holds a reference on). */
struct cov_file *cov_store_add(const void *key, const char *filename);

/* The file for a path, found or added without a key (modules.c). */
struct cov_file *cov_store_file(const char *filename);

/* Record line in the import context of f. */
int cov_store_mark_import(struct cov_file *f, int line);

static inline void cov_store_mark(struct cov_file *f, int line);

/* Has line of f run (context "")? */
static inline int cov_store_ran(const struct cov_file *f, int line)
{
	return line > 0 && (uint32_t)line >> 3 < f->nbytes &&
	       f->bits[line >> 3] & (1u << (line & 7));
}

/* Forget the lines that ran, keep the files and the import context (no
 * allocation, no Python call). */
void cov_store_zero(void);

/* Forget everything; release(key) is called for every key added. */
void cov_store_clear(void (*release)(const void *key));

int cov_store_snapshot(struct cov_snap *s);
/* The same, without the GIL, and the totals (uWSGI without threads). */
int cov_store_snapshot_nogil(struct cov_snap *s, uint32_t *files, uint32_t *lines);
/* store_lock (store.c): a fork takes it, so no child inherits it held. */
void cov_store_lock(void);
void cov_store_unlock(void);
void cov_snap_free(struct cov_snap *s);
void cov_store_counts(uint32_t *files, uint32_t *lines);
/* Where the totals (files with lines, lines) go as they change, or NULL. */
void cov_store_publish(uint32_t *files, uint32_t *lines);
/* The hot path's slow branch: a line recorded for the first time. */
void cov_store_new_line(struct cov_file *f);

/* Pure helpers, unit-tested. */
int cov_path_in_scope(const struct cov_scope *scope, const char *path);
int cov_path_measured(const struct cov_scope *scope, const struct cov_filter *filter,
		      const char *path);
int cov_fnmatch(const char *pattern, const char *s);
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
		cov_store_new_line(f);
	}
}

#endif
