/*
 * modules.c - what the payload learns from the target's modules, in the
 * payload's own thread:
 *
 * 1. --source NAME: the package (or module) NAME, resolved to its
 *    directories (or file) without importing it: sys.modules if it is
 *    imported, else the target's own sys.meta_path finders, asked
 *    find_spec(name, parent_path) as importlib.util.find_spec would, but
 *    without importing the parent packages either.
 *
 * 2. The "import" context: for each module already imported at start and
 *    in scope, the lines its import ran, derived from its code (never
 *    observed): the line starts of the module's code object and of the
 *    class bodies it defines (recursively), which covers every top-level
 *    statement, def and class line and decorator.  The code comes from the
 *    module's .pyc (__cached__, or __spec__.cached) when it matches the
 *    source's mtime and size (exactly what was imported), else from
 *    compiling the source with the target's own compiler
 *    (Py_CompileStringExFlags) while a temporary "ignore" filter keeps
 *    compile-time warnings off the target's stderr.
 *    Line starts come from co_lines() (3.10+) or co_lnotab (3.6-3.9).
 *
 * No module is imported.  The GIL is held for one module at a time and
 * released between modules, so the program runs on meanwhile.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "modules.h"
#include "store.h"

#define MAX_FILE	(64 << 20)	/* larger sources or .pyc files are skipped */
#define MAX_DEPTH	32		/* class bodies nested that deep */

static struct pyapi *py;

/* ---- small helpers ------------------------------------------------------ */

static void drop(PyObject *o)
{
	if (o)
		py->DecRef(o);
}

/* A copy of str object o into buf; 0, or -1 if o is not a str that fits. */
static int str_copy(PyObject *o, char *buf, size_t len)
{
	const char *s = o && o != py->None ? py->Unicode_AsUTF8AndSize(o, NULL) : NULL;

	if (!s) {
		py->Err_Clear();
		return -1;
	}
	return snprintf(buf, len, "%s", s) < (int)len ? 0 : -1;
}

/* The whole file, NUL-terminated, in malloc'ed memory; NULL on failure. */
static char *slurp(const char *path, size_t *len, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	ssize_t n;
	size_t got = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, st) || !S_ISREG(st->st_mode) || st->st_size > MAX_FILE ||
	    !(buf = malloc((size_t)st->st_size + 1)))
		goto fail;
	while (got < (size_t)st->st_size &&
	       (n = read(fd, buf + got, (size_t)st->st_size - got)) > 0)
		got += (size_t)n;
	if (got != (size_t)st->st_size)
		goto fail;
	buf[got] = 0;
	*len = got;
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

static uint32_t le32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- --source NAME -------------------------------------------------------- */

/* Add the realpath of the str object o to out[]. */
static void add_path(PyObject *o, char **out, int max, int *n)
{
	char buf[PATH_MAX], real[PATH_MAX];

	if (*n < max && !str_copy(o, buf, sizeof(buf)) && realpath(buf, real) &&
	    (out[*n] = strdup(real)))
		(*n)++;
}

/* Where a module or spec lives: its search locations, else its file. */
static int add_locations(PyObject *locations, PyObject *file, char **out, int max,
			 int *n)
{
	PyObject *it = locations && locations != py->None ?
		py->Object_GetIter(locations) : NULL, *item;
	int before = *n;

	if (it) {
		while ((item = py->Iter_Next(it))) {
			add_path(item, out, max, n);
			py->DecRef(item);
		}
		py->DecRef(it);
	} else if (file && file != py->None) {
		add_path(file, out, max, n);
	}
	py->Err_Clear();
	return *n > before ? 0 : -1;
}

/* finder.find_spec(name, path) for each finder of sys.meta_path. */
static PyObject *find_spec(const char *name, PyObject *path)
{
	PyObject *finders = py->Sys_GetObject("meta_path"), *it, *finder, *spec = NULL;

	if (!finders || !(it = py->Object_GetIter(finders)))
		goto out;
	while (!spec && (finder = py->Iter_Next(it))) {
		spec = py->Object_CallMethod(finder, "find_spec", "sO", name,
					     path ? path : py->None);
		if (spec == py->None) {
			py->DecRef(spec);
			spec = NULL;
		}
		py->Err_Clear();	/* a finder without find_spec, or failing */
		py->DecRef(finder);
	}
	py->DecRef(it);
out:
	py->Err_Clear();
	return spec;
}

/* The search locations of package name (a new reference), or NULL. */
static PyObject *package_path(const char *name)
{
	PyObject *modules = py->Sys_GetObject("modules"), *mod, *spec, *path;
	char parent[256], *dot;
	PyObject *ppath = NULL;

	mod = modules ? py->Dict_GetItemString(modules, name) : NULL;
	if (mod) {
		path = py->Object_GetAttrString(mod, "__path__");
		py->Err_Clear();	/* a module, not a package: NULL */
		return path;
	}
	snprintf(parent, sizeof(parent), "%s", name);
	if ((dot = strrchr(parent, '.'))) {
		*dot = 0;
		if (!(ppath = package_path(parent)))
			return NULL;
	}
	spec = find_spec(name, ppath);
	drop(ppath);
	if (!spec)
		return NULL;
	path = py->Object_GetAttrString(spec, "submodule_search_locations");
	py->DecRef(spec);
	py->Err_Clear();
	return path;
}

/* One --source NAME: its directories (a package) or its file (a module). */
static int resolve_one(const char *name, char **out, int max, int *n)
{
	PyObject *modules = py->Sys_GetObject("modules"), *mod, *spec = NULL;
	PyObject *locations = NULL, *file = NULL, *ppath = NULL;
	char parent[256], *dot;
	int rc;

	if (strlen(name) >= sizeof(parent))
		return -1;
	mod = modules ? py->Dict_GetItemString(modules, name) : NULL;
	if (mod) {
		locations = py->Object_GetAttrString(mod, "__path__");
		py->Err_Clear();
		file = py->Object_GetAttrString(mod, "__file__");
	} else {
		snprintf(parent, sizeof(parent), "%s", name);
		if ((dot = strrchr(parent, '.'))) {
			*dot = 0;
			if (!(ppath = package_path(parent)))
				return -1;
		}
		spec = find_spec(name, ppath);
		if (spec) {
			locations = py->Object_GetAttrString(spec, "submodule_search_locations");
			py->Err_Clear();
			file = py->Object_GetAttrString(spec, "origin");
		}
	}
	py->Err_Clear();
	rc = add_locations(locations, file, out, max, n);
	drop(locations);
	drop(file);
	drop(spec);
	drop(ppath);
	return rc;
}

int cov_modules_resolve(struct pyapi *api, const char *const *names, char **out,
			int max, int *n, char *err, size_t len)
{
	py = api;
	for (; *names; names++) {
		if (resolve_one(*names, out, max, n)) {
			snprintf(err, len, "--source %s: no directory and no module of "
				 "that name importable in the process (give a directory, "
				 "or a package the program can import)", *names);
			return -1;
		}
	}
	return 0;
}

/* ---- the import context -------------------------------------------------- */

/* co_lnotab (2.7, 3.6-3.9): dis.findlinestarts' walk,
 * Objects/lnotab_notes.txt; line increments are signed from 3.6. */
static void mark_lnotab(PyObject *code, struct cov_file *f)
{
	PyObject *tab = py->Object_GetAttrString(code, "co_lnotab");
	PyObject *bytecode = py->Object_GetAttrString(code, "co_code");
	PyObject *first = py->Object_GetAttrString(code, "co_firstlineno");
	const unsigned char *t;
	Py_ssize_t n, len;
	long line, addr = 0;
	int sign = py->hex >= 0x03060000;

	if (!tab || !bytecode || !first)
		goto out;
	t = (const unsigned char *)py->Bytes_AsString(tab);
	n = py->Bytes_Size(tab);
	len = py->Bytes_Size(bytecode);
	line = py->Long_AsLong(first);
	for (Py_ssize_t i = 0; t && i + 1 < n; i += 2) {
		if (t[i]) {
			cov_store_mark_import(f, (int)line);
			addr += t[i];
			if (addr >= len)
				goto out;
		}
		line += sign && t[i + 1] >= 0x80 ? (long)t[i + 1] - 0x100 : t[i + 1];
	}
	if (addr < len)
		cov_store_mark_import(f, (int)line);
out:
	drop(tab);
	drop(bytecode);
	drop(first);
	py->Err_Clear();
}

/* co_lines() (3.10+): (start, end, line or None) for every range. */
static void mark_co_lines(PyObject *code, struct cov_file *f)
{
	PyObject *ranges = py->Object_CallMethod(code, "co_lines", NULL);
	PyObject *it = ranges ? py->Object_GetIter(ranges) : NULL, *t, *line;

	while (it && (t = py->Iter_Next(it))) {
		line = py->Tuple_GetItem(t, 2);
		if (line && line != py->None)
			cov_store_mark_import(f, (int)py->Long_AsLong(line));
		py->DecRef(t);
	}
	drop(it);
	drop(ranges);
	py->Err_Clear();
}

static int is_class_body(PyObject *o)
{
	PyObject *flags;
	long v;

	if (py->Object_IsInstance(o, py->CodeType) != 1)
		return 0;
	if (!(flags = py->Object_GetAttrString(o, "co_flags")))
		return 0;
	v = py->Long_AsLong(flags);
	py->DecRef(flags);
	/* functions, lambdas and comprehensions have both; module and class
	 * bodies neither (Include/cpython/code.h) */
	return v >= 0 && !(v & (PY_CO_OPTIMIZED | PY_CO_NEWLOCALS));
}

/* The lines of a module or class body, and of the class bodies it holds. */
static void mark_code(PyObject *code, struct cov_file *f, int depth)
{
	PyObject *consts;

	if (py->hex >= 0x030a0000)
		mark_co_lines(code, f);
	else
		mark_lnotab(code, f);
	if (depth >= MAX_DEPTH || !(consts = py->Object_GetAttrString(code, "co_consts")))
		goto out;
	for (Py_ssize_t i = 0; i < py->Tuple_Size(consts); i++) {
		PyObject *c = py->Tuple_GetItem(consts, i);

		if (c && is_class_body(c))
			mark_code(c, f, depth + 1);
	}
	py->DecRef(consts);
out:
	py->Err_Clear();
}

/* The code the module's .pyc holds, if the .pyc matches the source file. */
static PyObject *code_from_pyc(const char *cached, const struct stat *src)
{
	static long magic = -1;
	unsigned char *data;
	struct stat st;
	size_t len, hdr, at;	/* at: where mtime is; size follows it (3.x) */
	PyObject *code = NULL;
	int flags = py->hex >= 0x03070000, sized = py->hex >= 0x03000000;

	if (magic == -1 && (magic = py->Import_GetMagicNumber()) == -1)
		py->Err_Clear();
	if (!(data = (unsigned char *)slurp(cached, &len, &st)))
		return NULL;
	/* PEP 552 header (3.7+): magic, flags (0: timestamp-based), mtime,
	 * size; before it (3.6) the same without the flags; 2.7: magic, mtime */
	at = flags ? 8 : 4;
	hdr = at + (sized ? 8 : 4);
	if (len > hdr && le32(data) == (uint32_t)magic && (!flags || le32(data + 4) == 0) &&
	    le32(data + at) == (uint32_t)src->st_mtime &&
	    (!sized || le32(data + at + 4) == (uint32_t)src->st_size)) {
		code = py->Marshal_ReadObjectFromString((char *)data + hdr,
							(Py_ssize_t)(len - hdr));
		if (code && py->Object_IsInstance(code, py->CodeType) != 1) {
			py->DecRef(code);
			code = NULL;
		}
	}
	py->Err_Clear();
	free(data);
	return code;
}

/*
 * The warnings filter list in use (warnings.filters if the program
 * imported warnings, else the C module's own), with ("ignore", None,
 * Warning, None, 0) put first; undone by unmute.  We hold the GIL all the
 * while, so no other thread can see it.
 */
static PyObject *mute(PyObject **entry)
{
	PyObject *modules = py->Sys_GetObject("modules"), *mod = NULL, *filters;

	*entry = NULL;
	if (modules && !(mod = py->Dict_GetItemString(modules, "warnings")))
		mod = py->Dict_GetItemString(modules, "_warnings");
	if (!mod || !(filters = py->Object_GetAttrString(mod, "filters"))) {
		py->Err_Clear();
		return NULL;
	}
	*entry = py->Build_Value("(sOOOi)", "ignore", py->None,
				 *(PyObject **)py->ExcWarning, py->None, 0);
	if (!*entry || py->List_Insert(filters, 0, *entry)) {
		drop(*entry);
		py->DecRef(filters);
		py->Err_Clear();
		*entry = NULL;
		return NULL;
	}
	return filters;
}

static void unmute(PyObject *filters, PyObject *entry)
{
	if (!filters)
		return;
	for (Py_ssize_t i = 0; i < py->List_Size(filters); i++) {
		if (py->List_GetItem(filters, i) == entry) {
			py->List_SetSlice(filters, i, i + 1, NULL);
			break;
		}
	}
	py->DecRef(entry);
	py->DecRef(filters);
	py->Err_Clear();
}

static PyObject *code_from_source(const char *file, const char *src, size_t len)
{
	PyObject *filters, *entry, *code;

	if (strlen(src) != len)
		return NULL;	/* a NUL byte: not compilable */
	filters = mute(&entry);
	code = py->CompileStringExFlags(src, file, PY_FILE_INPUT, NULL, -1);
	unmute(filters, entry);
	py->Err_Clear();
	return code;
}

/* A module that has run: a plain module object, not a lazy one waiting for
 * its first attribute access, not one still being imported. */
static int finished_module(PyObject *mod, PyObject **dict)
{
	PyObject *spec, *init;
	int busy = 0;

	*dict = NULL;
	if (py->Object_IsInstance(mod, py->ModuleType) != 1 ||
	    !strcmp(cov_type_name(mod), "_LazyModule") ||
	    !(*dict = py->Module_GetDict(mod))) {
		py->Err_Clear();
		return 0;
	}
	spec = py->Dict_GetItemString(*dict, "__spec__");
	if (spec && spec != py->None &&
	    (init = py->Object_GetAttrString(spec, "_initializing"))) {
		busy = py->Object_IsTrue(init) == 1;
		py->DecRef(init);
	}
	py->Err_Clear();
	return !busy;
}

/*
 * A module's file that is Python source: .py, and any other name a loader
 * executes as source (mod_wsgi's .wsgi scripts, a script run by runpy under
 * its own name); not the compiled and binary forms a module can come from.
 */
static int is_source(const char *file)
{
	static const char *const binary[] = { ".so", ".pyd", ".pyc", ".pyo", ".dll",
					      ".dylib", NULL };
	size_t n = strlen(file);

	if (file[0] != '/')
		return 0;
	for (int i = 0; binary[i]; i++) {
		size_t k = strlen(binary[i]);

		if (n >= k && !strcmp(file + n - k, binary[i]))
			return 0;
	}
	return 1;
}

/* The module's .pyc: __cached__, or __spec__.cached (3.15 sets no
 * __cached__).  0, or -1 (none; error cleared). */
static int cached_of(PyObject *dict, char *buf, size_t len)
{
	PyObject *spec, *cached;
	int r;

	if (!str_copy(py->Dict_GetItemString(dict, "__cached__"), buf, len))
		return 0;
	spec = py->Dict_GetItemString(dict, "__spec__");	/* borrowed */
	if (!spec || spec == py->None)
		return -1;
	if (!(cached = py->Object_GetAttrString(spec, "cached"))) {
		py->Err_Clear();
		return -1;
	}
	r = str_copy(cached, buf, len);
	py->DecRef(cached);
	return r;
}

/* 2.7 names the .pyc a module was loaded from in __file__: then file
 * becomes the source beside it, cached the .pyc.  0, or -1 (too long). */
static int from_pyc2(char *file, char *cached, size_t len)
{
	size_t n = strlen(file);

	if (n < 5 || (strcmp(file + n - 4, ".pyc") && strcmp(file + n - 4, ".pyo")))
		return 0;
	if (n >= len)
		return -1;
	memcpy(cached, file, n + 1);
	file[n - 1] = 0;
	return 0;
}

/* 1 if mod was a measured module whose code we read or compiled. */
static int import_lines_of(PyObject *mod)
{
	char file[PATH_MAX], cached[PATH_MAX];
	PyObject *dict, *code = NULL;
	struct cov_file *f;
	struct stat st;
	size_t len;
	char *src = NULL;

	if (!finished_module(mod, &dict) ||
	    str_copy(py->Dict_GetItemString(dict, "__file__"), file, sizeof(file)))
		return 0;
	cached[0] = 0;
	if (py->hex < 0x03000000 && from_pyc2(file, cached, sizeof(cached)))
		return 0;
	if (!is_source(file))
		return 0;	/* extension modules, .pyc-only, namespace pkgs */
	f = cov_store_file(file);
	if (!f || !f->in_scope || f->imported.nlines || stat(file, &st))
		return 0;	/* out of scope, seen under another name, gone */
	if (cached[0] || !cached_of(dict, cached, sizeof(cached)))
		code = code_from_pyc(cached, &st);
	if (!code && (src = slurp(file, &len, &st)))
		code = code_from_source(file, src, len);
	free(src);
	if (code) {
		mark_code(code, f, 0);
		py->DecRef(code);
	}
	return 1;
}

void cov_modules_import_lines(struct pyapi *api, int *stop, int keep_gil)
{
	PyObject *modules, *list;
	PyThreadState *ts;

	py = api;
	modules = py->Sys_GetObject("modules");
	if (!modules || !(list = py->Dict_Values(modules))) {
		py->Err_Clear();
		return;
	}
	for (Py_ssize_t i = 0; i < py->List_Size(list) && !__atomic_load_n(stop, __ATOMIC_SEQ_CST); i++) {
		int worked = import_lines_of(py->List_GetItem(list, i));

		py->Err_Clear();
		if (!worked || keep_gil)
			continue;	/* skipped cheaply, or told to: keep the GIL */
		/* Let the program run: a release alone is not enough, we would
		 * take the GIL back before a waiting thread even woke up. */
		ts = py->Eval_SaveThread();
		usleep(500);
		py->Eval_RestoreThread(ts);
	}
	py->DecRef(list);
}
