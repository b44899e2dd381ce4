/*
 * writer.c - write a snapshot as a coverage.py data file: SQLite, schema 7
 * (coverage/sqldata.py; unchanged since coverage.py 5.0), through the
 * target's own libsqlite3.
 *
 * The file is built under a temporary name that coverage.py's combine does
 * not match (".covinject-tmp.*" instead of ".coverage.*"), created with
 * O_EXCL|O_NOFOLLOW, made durable, then renamed over the final name: a
 * reader sees the previous snapshot or the new one, never half of one, and
 * a failed write leaves the previous snapshot in place.  Every file
 * operation is relative to the output directory's fd, and the database is
 * built in memory and serialized: the directory may be one the process
 * cannot name, handed over by the CLI from another mount namespace.
 *
 * Contexts: id 1 is "" (the lines that ran), id 2 "import" (the lines the
 * import of modules loaded before start ran, derived from their code:
 * payload/modules.c); a line_bits row per file and context that has lines.
 * With --branch the file holds arcs instead (has_arcs 1; coverage.py keeps
 * one or the other): (-n, n) for each line n, in its context, and the arcs
 * taken (payload/arcs.c) in context "".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "pyapi.h"
#include "writer.h"

#define SQLITE_OK		0
#define SQLITE_DONE		101
#define SQLITE_OPEN_READWRITE	0x00000002
#define SQLITE_OPEN_CREATE	0x00000004
#define SQLITE_OPEN_NOFOLLOW	0x01000000
#define SQLITE_TRANSIENT	((void (*)(void *))-1)

static const char schema[] =
	"PRAGMA journal_mode=OFF;"
	"PRAGMA synchronous=OFF;"
	"BEGIN;"
	"CREATE TABLE coverage_schema (version integer);"
	"CREATE TABLE meta (key text, value text, unique (key));"
	"CREATE TABLE file (id integer primary key, path text, unique (path));"
	"CREATE TABLE context (id integer primary key, context text, unique (context));"
	"CREATE TABLE line_bits (file_id integer, context_id integer, numbits blob,"
	" foreign key (file_id) references file (id),"
	" foreign key (context_id) references context (id),"
	" unique (file_id, context_id));"
	"CREATE TABLE arc (file_id integer, context_id integer, fromno integer,"
	" tono integer, foreign key (file_id) references file (id),"
	" foreign key (context_id) references context (id),"
	" unique (file_id, context_id, fromno, tono));"
	"CREATE TABLE tracer (file_id integer primary key, tracer text,"
	" foreign key (file_id) references file (id));"
	"INSERT INTO coverage_schema (version) VALUES (7);"
	"INSERT INTO context (id, context) VALUES (1, '');";

#define CTX_LIVE	1
#define CTX_IMPORT	2
static const char import_context[] =
	"INSERT INTO context (id, context) VALUES (2, 'import');";

static int fail(char *err, size_t len, const char *what, const char *why)
{
	snprintf(err, len, "%s: %s", what, why);
	return -1;
}

static int exec_meta(const struct sqlite_api *sq, sqlite3 *db, const char *argv,
		     int has_arcs)
{
	static const char *const keys[] = { "has_arcs", "version", "when", "sys_argv" };
	char when[32];
	const char *vals[4];
	sqlite3_stmt *st;
	time_t t = time(NULL);
	struct tm tm;
	int rc = 0;

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
	vals[0] = has_arcs ? "1" : "0";
	vals[1] = COVINJECT_DATA_VERSION;
	vals[2] = when;
	vals[3] = argv;
	if (sq->prepare_v2(db, "INSERT INTO meta (key, value) VALUES (?, ?)", -1,
			   &st, NULL) != SQLITE_OK)
		return -1;
	for (int i = 0; i < 4 && !rc; i++) {
		sq->bind_text(st, 1, keys[i], -1, SQLITE_TRANSIENT);
		sq->bind_text(st, 2, vals[i], -1, SQLITE_TRANSIENT);
		rc = sq->step(st) == SQLITE_DONE ? 0 : -1;
		sq->reset(st);
	}
	sq->finalize(st);
	return rc;
}

/* One line_bits row, unless bits is empty. */
static int insert_bits(const struct sqlite_api *sq, sqlite3_stmt *l, long long file,
		       int ctx, const uint8_t *bits, uint32_t n)
{
	int rc;

	if (!n)
		return 0;
	sq->bind_int64(l, 1, file);
	sq->bind_int64(l, 2, ctx);
	sq->bind_blob(l, 3, bits, (int)n, SQLITE_TRANSIENT);
	rc = sq->step(l) == SQLITE_DONE ? 0 : -1;
	sq->reset(l);
	return rc;
}

static int insert_files(const struct sqlite_api *sq, sqlite3 *db,
			const struct cov_snap *s)
{
	sqlite3_stmt *f, *l;
	int rc = 0;

	if (sq->prepare_v2(db, "INSERT INTO file (id, path) VALUES (?, ?)", -1,
			   &f, NULL) != SQLITE_OK)
		return -1;
	if (sq->prepare_v2(db, "INSERT INTO line_bits (file_id, context_id, numbits)"
			   " VALUES (?, ?, ?)", -1, &l, NULL) != SQLITE_OK) {
		sq->finalize(f);
		return -1;
	}
	for (size_t i = 0; i < s->n && !rc; i++) {
		const struct cov_snap_file *sf = &s->files[i];

		sq->bind_int64(f, 1, (long long)i + 1);
		sq->bind_text(f, 2, sf->path, -1, SQLITE_TRANSIENT);
		if (sq->step(f) != SQLITE_DONE ||
		    insert_bits(sq, l, (long long)i + 1, CTX_LIVE, sf->bits, sf->nbytes) ||
		    insert_bits(sq, l, (long long)i + 1, CTX_IMPORT, sf->ibits, sf->inbytes))
			rc = -1;
		sq->reset(f);
	}
	sq->finalize(f);
	sq->finalize(l);
	return rc;
}

static int insert_arc(const struct sqlite_api *sq, sqlite3_stmt *a, long long file,
		      int ctx, long from, long to)
{
	int rc;

	sq->bind_int64(a, 1, file);
	sq->bind_int64(a, 2, ctx);
	sq->bind_int64(a, 3, from);
	sq->bind_int64(a, 4, to);
	rc = sq->step(a) == SQLITE_DONE ? 0 : -1;
	sq->reset(a);
	return rc;
}

/* (-n, n) for each line n of bits. */
static int insert_line_arcs(const struct sqlite_api *sq, sqlite3_stmt *a,
			    long long file, int ctx, const uint8_t *bits, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		for (int b = 0; b < 8; b++)
			if (bits[i] & (1u << b) &&
			    insert_arc(sq, a, file, ctx, -(long)(i * 8 + b), (long)(i * 8 + b)))
				return -1;
	return 0;
}

static int insert_arcs(const struct sqlite_api *sq, sqlite3 *db, const struct cov_snap *s)
{
	sqlite3_stmt *f, *a;
	int rc = 0;

	if (sq->prepare_v2(db, "INSERT INTO file (id, path) VALUES (?, ?)", -1,
			   &f, NULL) != SQLITE_OK)
		return -1;
	if (sq->prepare_v2(db, "INSERT OR IGNORE INTO arc (file_id, context_id, fromno, tono)"
			   " VALUES (?, ?, ?, ?)", -1, &a, NULL) != SQLITE_OK) {
		sq->finalize(f);
		return -1;
	}
	for (size_t i = 0; i < s->n && !rc; i++) {
		const struct cov_snap_file *sf = &s->files[i];
		long long id = (long long)i + 1;

		sq->bind_int64(f, 1, id);
		sq->bind_text(f, 2, sf->path, -1, SQLITE_TRANSIENT);
		rc = sq->step(f) == SQLITE_DONE ? 0 : -1;
		sq->reset(f);
		rc = rc || insert_line_arcs(sq, a, id, CTX_LIVE, sf->bits, sf->nbytes) ||
		     insert_line_arcs(sq, a, id, CTX_IMPORT, sf->ibits, sf->inbytes);
		for (uint32_t k = 0; k < sf->narcs && !rc; k++)
			rc = insert_arc(sq, a, id, CTX_LIVE, sf->arcs[2 * k], sf->arcs[2 * k + 1]);
	}
	sq->finalize(f);
	sq->finalize(a);
	return rc;
}

static int has_import_lines(const struct cov_snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->files[i].inbytes)
			return 1;
	return 0;
}

/* The schema, the meta rows and the data, in one transaction. */
static int fill(const struct sqlite_api *sq, sqlite3 *db, const struct cov_snap *s,
		const char *argv, char *err, size_t len)
{
	char *emsg = NULL;
	int rc = -1;

	if (sq->exec(db, schema, NULL, NULL, &emsg) != SQLITE_OK ||
	    (has_import_lines(s) &&
	     sq->exec(db, import_context, NULL, NULL, &emsg) != SQLITE_OK)) {
		fail(err, len, "create schema", emsg ? emsg : sq->errmsg(db));
		goto out;
	}
	if (exec_meta(sq, db, argv, s->has_arcs) ||
	    (s->has_arcs ? insert_arcs(sq, db, s) : insert_files(sq, db, s))) {
		fail(err, len, "insert", sq->errmsg(db));
		goto out;
	}
	if (sq->exec(db, "COMMIT", NULL, NULL, &emsg) != SQLITE_OK) {
		fail(err, len, "commit", emsg ? emsg : sq->errmsg(db));
		goto out;
	}
	rc = 0;
out:
	if (emsg)
		sq->free(emsg);
	return rc;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * The database built in memory, then its bytes written to fd: SQLite
 * never opens a path, so the directory may be one the process cannot name
 * (another mount namespace's, handed over as an fd).
 */
static int write_serialized(const struct sqlite_api *sq, int fd,
			    const struct cov_snap *s, const char *argv,
			    char *err, size_t len)
{
	sqlite3 *db = NULL;
	unsigned char *bytes = NULL;
	long long size = 0;
	int rc = -1;

	if (sq->open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			NULL) != SQLITE_OK) {
		fail(err, len, "open", db ? sq->errmsg(db) : "out of memory");
		goto out;
	}
	if (fill(sq, db, s, argv, err, len))
		goto out;
	if (!(bytes = sq->serialize(db, "main", &size, 0)) || size <= 0) {
		fail(err, len, "serialize", "out of memory");
		goto out;
	}
	if (write_all(fd, bytes, (size_t)size) || fsync(fd)) {
		fail(err, len, "write", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (bytes)
		sq->free(bytes);
	if (db)
		sq->close(db);
	return rc;
}

/* SQLite without sqlite3_serialize (before 3.36): it writes the file at
 * dir/tmpname itself, so dir must be a path the process sees. */
static int write_by_path(const struct sqlite_api *sq, const char *dir,
			 const char *tmpname, const struct cov_snap *s,
			 const char *argv, char *err, size_t len)
{
	char tmp[4096 + 64];
	sqlite3 *db = NULL;
	int rc = -1, fd;

	if (!dir)
		return fail(err, len, "libsqlite3", "no sqlite3_serialize (SQLite "
			    "before 3.36): give -o a directory the process sees "
			    "at the same path");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", dir, tmpname) >= sizeof(tmp))
		return fail(err, len, dir, "path too long");
	if (sq->open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
			NULL) != SQLITE_OK) {
		fail(err, len, "open", db ? sq->errmsg(db) : "out of memory");
		goto out;
	}
	rc = fill(sq, db, s, argv, err, len);
out:
	if (db && sq->close(db) != SQLITE_OK && !rc)
		rc = fail(err, len, "close", "database busy");
	if (!rc && (fd = open(tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		rc = fsync(fd);
		close(fd);
	}
	return rc;
}

int cov_write_snapshot(const struct cov_snap *s, const struct cov_out *out,
		       const char *final, const char *tmpname, const char *argv,
		       char *err, size_t errlen)
{
	struct sqlite_api sq;
	int fd, rc;

	if (cov_sqlite_load(&sq, err, errlen))
		return -1;
	fd = openat(out->dirfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(err, errlen, out->shown, strerror(errno));
	rc = sq.serialize ? write_serialized(&sq, fd, s, argv, err, errlen) :
	     write_by_path(&sq, out->path, tmpname, s, argv, err, errlen);
	close(fd);
	if (rc || renameat(out->dirfd, tmpname, out->dirfd, final)) {
		int e = errno;

		if (!err[0])
			fail(err, errlen, out->shown, strerror(e));
		unlinkat(out->dirfd, tmpname, 0);
		return -1;
	}
	return 0;
}
