/*
 * store.c - the line store.  Filename objects (the interpreter's str
 * objects, which we keep a reference on so their address is never reused)
 * map to files through an open-addressing table: the hot path is one hash
 * and usually one probe.  Files are found by path only on first sight.
 *
 * Bits are numbits as coverage.py stores them (coverage/numbits.py):
 * line n is bit n % 8 of byte n / 8.  Each file has two sets: the lines
 * that ran (context "", the hot path's) and the import context (lines
 * derived from the code of modules imported before start, modules.c).
 *
 * Which files are measured (cov_path_in_scope) follows coverage.py's rules
 * for --source, --include and --omit, decided once per file.
 */
#include <limits.h>
#include <pthread.h>
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
static const struct cov_filter *filter;
static uint32_t total_files, total_lines;	/* in scope, with lines */
static uint32_t *pub_files, *pub_lines;		/* cov_store_publish */
/*
 * The GIL is the store's lock, with one exception: uWSGI without threads
 * never lends the GIL while idle, so there snapshots are copied without it
 * (cov_store_snapshot_nogil).  Everything that allocates, frees or links
 * (a new file, bits that grow, zero, clear) therefore also holds
 * store_lock, always taken after the GIL and never held while waiting for
 * it; the hot path's bit stores are not locked: a copy made meanwhile may
 * miss a line set at that instant, which the next snapshot has.
 */
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;

void cov_store_lock(void)
{
	pthread_mutex_lock(&store_lock);
}

void cov_store_unlock(void)
{
	pthread_mutex_unlock(&store_lock);
}

static void publish(void)
{
	if (pub_files)
		__atomic_store_n(pub_files, total_files, __ATOMIC_RELAXED);
	if (pub_lines)
		__atomic_store_n(pub_lines, total_lines, __ATOMIC_RELAXED);
}

void cov_store_publish(uint32_t *nfiles, uint32_t *nlines)
{
	pub_files = nfiles;
	pub_lines = nlines;
	publish();
}

void cov_store_new_line(struct cov_file *f)
{
	if (!f->nlines++ && f->in_scope)
		total_files++;
	if (f->in_scope)
		total_lines++;
	publish();
}

void cov_store_init(const struct cov_scope *s)
{
	scope = s;
	filter = NULL;
	total_files = total_lines = 0;
	publish();
}

void cov_store_set_filter(const struct cov_filter *flt)
{
	filter = flt;
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

/* One element of a bracket expression, as fnmatch.translate reads it:
 * "[!a-c]" negates, "]" first is literal, "z-a" is empty, "\\" literal. */
static const char *bracket(const char *p, char c, int *hit)
{
	const char *end = p, *q;
	int neg = 0;

	if (*end == '!')
		end++;
	if (*end == ']')
		end++;
	while (*end && *end != ']')
		end++;
	if (!*end)
		return NULL;	/* no closing ']': the '[' is literal */
	if (*p == '!') {
		neg = 1;
		p++;
	}
	*hit = 0;
	for (q = p; q < end; q++) {
		if (q + 2 < end && q[1] == '-') {
			*hit |= q[0] <= c && c <= q[2];
			q += 2;
		} else {
			*hit |= *q == c;
		}
	}
	*hit ^= neg;
	return end + 1;
}

/* Does the pattern element at p match c?  Returns the next element or NULL. */
static const char *element(const char *p, char c)
{
	const char *next;
	int hit;

	if (*p == '?')
		return p + 1;
	if (*p == '[' && (next = bracket(p + 1, c, &hit)))
		return hit ? next : NULL;
	if (*p == '/')	/* coverage.py: a slash matches either slash */
		return (c == '/' || c == '\\') ? p + 1 : NULL;
	return *p == c ? p + 1 : NULL;
}

/*
 * Python's fnmatch.fnmatchcase as coverage.py's FnmatchMatcher uses it
 * (coverage/files.py, fnmatches_to_regex): the whole string must match,
 * "*" matches any run of characters, "/" included; "?" one character;
 * "[...]" a set; backslash is an ordinary character.  Backtracks only to
 * the last "*", which is enough for patterns without "**" semantics.
 */
int cov_fnmatch(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL, *next;

	while (*s) {
		if (*pat == '*') {
			while (*pat == '*')
				pat++;
			star = pat;
			resume = s;
		} else if (*pat && (next = element(pat, *s))) {
			pat = next;
			s++;
		} else if (star) {
			pat = star;
			s = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return !*pat;
}

static int any_match(const char *const *pats, const char *path)
{
	for (; pats && *pats; pats++)
		if (cov_fnmatch(*pats, path))
			return 1;
	return 0;
}

static int ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);

	return n >= m && !strcmp(s + n - m, end);
}

/* In an installed-packages directory, or one itself. */
static int third_party(const char *path)
{
	return strstr(path, "/site-packages/") || strstr(path, "/dist-packages/") ||
	       ends_with(path, "/site-packages") || ends_with(path, "/dist-packages");
}

static int in_sources(const struct cov_scope *s, const char *path)
{
	int found = 0, source_in_third = 0;

	for (const char *const *d = s->sources; *d; d++) {
		found |= under(path, *d);
		source_in_third |= third_party(*d);
	}
	/* coverage.py: "inside --source, but is third-party" */
	return found && (source_in_third || !third_party(path));
}

int cov_path_measured(const struct cov_scope *s, const struct cov_filter *flt,
		      const char *path)
{
	const char *const *inc = flt ? flt->includes : NULL;
	int in;

	if (path[0] != '/')
		return 0;	/* "<string>", "<frozen ...>": no source file */
	if (s->sources && s->sources[0])
		in = in_sources(s, path);	/* --include is ignored then */
	else if (inc && inc[0])
		in = any_match(inc, path);
	else
		in = !third_party(path) &&
		     !(s->stdlib && s->stdlib[0] && under(path, s->stdlib));
	return in && !(flt && any_match(flt->omits, path));
}

int cov_path_in_scope(const struct cov_scope *s, const char *path)
{
	return cov_path_measured(s, NULL, path);
}

/*
 * Without --source or --include, a file the interpreter names inside the
 * stdlib or an installed-packages directory stays out even when its real
 * path lies elsewhere: Debian's /usr/lib/python3.X/sitecustomize.py is a
 * symlink to /etc/python3.X/.  (coverage.py would measure it by its real
 * path; it never sees it run, since it runs at interpreter start.)
 */
static int named_outside(const char *filename)
{
	const char *const *src = scope->sources;
	const char *const *inc = filter ? filter->includes : NULL;

	if (filename[0] != '/' || (src && src[0]) || (inc && inc[0]))
		return 0;
	return third_party(filename) ||
	       (scope->stdlib && scope->stdlib[0] && under(filename, scope->stdlib));
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

struct cov_file *cov_store_file(const char *filename)
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
		return f;
	}
	if (!(f = calloc(1, sizeof(*f)))) {
		free(path);
		return NULL;
	}
	f->path = path;
	f->in_scope = cov_path_measured(scope, filter, path) && !named_outside(filename);
	cov_store_lock();
	f->next = files;
	files = f;
	cov_store_unlock();
	return f;
}

struct cov_file *cov_store_add(const void *key, const char *filename)
{
	struct cov_file *f = cov_store_file(filename);

	return (!f || insert(key, f)) ? NULL : f;
}

static int bits_grow(uint8_t **bits, uint32_t *nbytes, int line)
{
	uint32_t need = ((uint32_t)line >> 3) + 1;
	uint32_t n = *nbytes ? *nbytes : 64;
	uint8_t *b;

	while (n < need)
		n *= 2;
	if (!(b = realloc(*bits, n)))
		return -1;
	memset(b + *nbytes, 0, n - *nbytes);
	*bits = b;
	*nbytes = n;
	return 0;
}

int cov_grow_mark(struct cov_file *f, int line)
{
	int rc;

	cov_store_lock();
	rc = bits_grow(&f->bits, &f->nbytes, line);
	cov_store_unlock();
	if (rc)
		return -1;
	cov_store_mark(f, line);
	return 0;
}

int cov_store_mark_import(struct cov_file *f, int line)
{
	struct cov_bits *b = &f->imported;
	uint8_t bit = 1u << (line & 7);

	int rc = 0;

	if (line <= 0)
		return 0;
	if ((uint32_t)line >> 3 >= b->nbytes) {
		cov_store_lock();
		rc = bits_grow(&b->bits, &b->nbytes, line);
		cov_store_unlock();
	}
	if (rc)
		return -1;
	if (!(b->bits[line >> 3] & bit)) {
		b->bits[line >> 3] |= bit;
		b->nlines++;
	}
	return 0;
}

void cov_store_zero(void)
{
	cov_store_lock();
	for (struct cov_file *f = files; f; f = f->next) {
		if (f->bits)
			memset(f->bits, 0, f->nbytes);
		f->nlines = 0;
	}
	cov_store_unlock();
	total_files = total_lines = 0;
	publish();
}

void cov_store_clear(void (*release)(const void *key))
{
	struct cov_file *f, *next;

	cov_store_lock();
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
		free(f->imported.bits);
		free(f);
	}
	files = NULL;
	cov_store_unlock();
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

/* A copy of b without trailing zero bytes (numbits carry none), or NULL. */
static int copy_bits(const uint8_t *b, uint32_t n, uint8_t **out, uint32_t *outn)
{
	*out = NULL;
	*outn = 0;
	while (n && !b[n - 1])
		n--;
	if (!n)
		return 0;
	if (!(*out = malloc(n)))
		return -1;
	memcpy(*out, b, n);
	*outn = n;
	return 0;
}

static int worth_writing(const struct cov_file *f)
{
	return f->in_scope && (f->nlines || f->imported.nlines);
}

/* The copy, under store_lock; index: note each file's place in it (for
 * arcs.c, GIL held). */
static int snapshot(struct cov_snap *s, int index)
{
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	for (struct cov_file *f = files; f; f = f->next)
		n += worth_writing(f);
	if (n && !(s->files = calloc(n, sizeof(*s->files))))
		return -1;
	for (struct cov_file *f = files; f; f = f->next) {
		struct cov_snap_file *sf;

		if (index)
			f->snap_index = -1;
		if (!worth_writing(f) || s->n == n)
			continue;	/* (a file the hot path just met: next time) */
		if (index)
			f->snap_index = (int)s->n;
		sf = &s->files[s->n++];
		if (!(sf->path = strdup(f->path)) ||
		    copy_bits(f->bits, f->nbytes, &sf->bits, &sf->nbytes) ||
		    copy_bits(f->imported.bits, f->imported.nbytes, &sf->ibits,
			      &sf->inbytes)) {
			cov_snap_free(s);
			return -1;
		}
	}
	return 0;
}

int cov_store_snapshot(struct cov_snap *s)
{
	int rc;

	cov_store_lock();
	rc = snapshot(s, 1);
	cov_store_unlock();
	return rc;
}

int cov_store_snapshot_nogil(struct cov_snap *s, uint32_t *nfiles, uint32_t *nlines)
{
	int rc;

	cov_store_lock();
	rc = snapshot(s, 0);
	cov_store_counts(nfiles, nlines);
	cov_store_unlock();
	return rc;
}

void cov_snap_free(struct cov_snap *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->files[i].path);
		free(s->files[i].bits);
		free(s->files[i].ibits);
		free(s->files[i].arcs);
	}
	free(s->files);
	memset(s, 0, sizeof(*s));
}
