/*
 * hooks.c - the interpreter's own hooks that keep data from being lost:
 *
 *   atexit.register(covinject_exit)  a process that ends normally (return
 *       from main, sys.exit, a SIGTERM that Python turns into SystemExit, a
 *       gunicorn worker recycled by max_requests) writes its final snapshot;
 *       atexit.unregister at stop (2.7 has none: our entry is taken out of
 *       atexit._exithandlers).
 *   os.register_at_fork(after_in_child=covinject_fork)  a child forked
 *       while collecting starts its own payload thread, from empty data,
 *       into its own file.  CPython offers no way to unregister this one: after
 *       stop it stays registered and does nothing.
 *   threading._after_fork, on 2.7 and 3.6, which have no
 *       os.register_at_fork: the function PyOS_AfterFork calls in every
 *       child of os.fork (through PyEval_ReInitThreads, once the GIL
 *       exists, which it does while covinject collects), wrapped: CPython's
 *       own first, then ours.  The original goes back at stop, unless the
 *       program replaced ours.  Until the program imports threading, a
 *       child of os.fork takes its collector at its first trace event
 *       instead (payload.c, after_fork_child).
 *
 * They run in the interpreter's thread with the GIL held, after CPython has
 * made its own state consistent (PyOS_AfterFork_Child runs first; on 2.7
 * and 3.6, the thread-local storage and the GIL are reinitialised before
 * threading._after_fork, the import lock after it, which our thread waits
 * for anyway: it needs the GIL the child's thread holds until then).
 * METH_NOARGS: every version's calling convention has it.
 */
#include <string.h>
#include "payload.h"

static PyObject *exit_fn, *fork_fn;
static int fork_registered;
static PyObject *threading_mod, *after_fork_orig, *after_fork_ours;	/* 2.7, 3.6 */
static int no_register_at_fork;	/* 2.7, 3.6, collecting: the wrap instead */

static PyObject *none(void)
{
	cov_py.IncRef(cov_py.None);
	return cov_py.None;
}

static PyObject *on_exit_cb(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	cov_on_exit();
	return none();
}

static PyObject *on_fork_cb(PyObject *self, PyObject *unused)
{
	(void)self;
	(void)unused;
	cov_on_fork_child();
	return none();
}

/* threading._after_fork in our place (2.7, 3.6): self is CPython's. */
static PyObject *on_after_fork_cb(PyObject *orig, PyObject *unused)
{
	PyObject *r, *t, *v, *tb;

	(void)unused;
	cov_adopt_pending = 0;	/* not inside CPython's own: after it, here */
	r = cov_py.Object_CallFunctionObjArgs(orig, NULL);
	cov_py.Err_Fetch(&t, &v, &tb);	/* its error, if any, is the caller's */
	cov_on_fork_child();
	cov_py.Err_Restore(t, v, tb);
	return r;
}

static struct py_methoddef exit_def = {
	"covinject_exit", (void *)on_exit_cb, PY_METH_NOARGS, NULL
};
static struct py_methoddef fork_def = {
	"covinject_fork", (void *)on_fork_cb, PY_METH_NOARGS, NULL
};
static struct py_methoddef after_fork_def = {
	"_after_fork", (void *)on_after_fork_cb, PY_METH_NOARGS, NULL
};

/* module.name(arg) with keyword kw if given; 0 or -1 (error cleared). */
static int call(const char *module, const char *name, const char *kw,
		PyObject *arg)
{
	PyObject *mod = cov_py.Import_ImportModule(module), *fn = NULL, *r = NULL;

	if (mod)
		fn = cov_py.Object_GetAttrString(mod, name);
	if (fn && kw) {
		PyObject *kwargs = cov_py.Dict_New(), *noargs = cov_py.Tuple_New(0);

		if (kwargs && noargs && cov_py.Dict_SetItemString(kwargs, kw, arg) == 0)
			r = cov_py.Object_Call(fn, noargs, kwargs);
		if (kwargs)
			cov_py.DecRef(kwargs);
		if (noargs)
			cov_py.DecRef(noargs);
	} else if (fn) {
		r = cov_py.Object_CallFunctionObjArgs(fn, arg, NULL);
	}
	if (r)
		cov_py.DecRef(r);
	if (fn)
		cov_py.DecRef(fn);
	if (mod)
		cov_py.DecRef(mod);
	cov_py.Err_Clear();
	return r ? 0 : -1;
}

/* Has module `module` an attribute `name`?  Error cleared. */
static int has(const char *module, const char *name)
{
	PyObject *mod = cov_py.Import_ImportModule(module), *fn = NULL;

	if (mod)
		fn = cov_py.Object_GetAttrString(mod, name);
	if (fn)
		cov_py.DecRef(fn);
	if (mod)
		cov_py.DecRef(mod);
	cov_py.Err_Clear();
	return fn != NULL;
}

/*
 * 2.7, 3.6: threading._after_fork wrapped, if the program imported threading
 * (ours must not: the module would take our thread for the main one);
 * the sweep tries again.  0 (or not imported yet), or -1 (error cleared).
 */
static int wrap_after_fork(void)
{
	PyObject *name = cov_py.Unicode_FromString("threading");
	PyObject *mod = name ? cov_py.Import_GetModule(name) : NULL, *orig = NULL;
	PyObject *ours = NULL;

	if (name)
		cov_py.DecRef(name);
	cov_py.Err_Clear();
	if (!mod)
		return 0;
	orig = cov_py.Object_GetAttrString(mod, "_after_fork");
	if (orig)
		ours = cov_py.CFunction_NewEx(&after_fork_def, orig, NULL);
	if (ours && cov_py.Object_SetAttrString(mod, "_after_fork", ours) == 0) {
		threading_mod = mod;
		after_fork_orig = orig;
		after_fork_ours = ours;
		return 0;
	}
	if (ours)
		cov_py.DecRef(ours);
	if (orig)
		cov_py.DecRef(orig);
	if (mod)
		cov_py.DecRef(mod);
	cov_py.Err_Clear();
	return -1;
}

/* The original back, if ours is still there. */
static void unwrap_after_fork(void)
{
	PyObject *now;

	if (!threading_mod)
		return;
	now = cov_py.Object_GetAttrString(threading_mod, "_after_fork");
	if (now == after_fork_ours &&
	    cov_py.Object_SetAttrString(threading_mod, "_after_fork", after_fork_orig))
		cov_py.Err_Clear();
	cov_py.Err_Clear();
	if (now)
		cov_py.DecRef(now);
	cov_py.DecRef(after_fork_ours);
	cov_py.DecRef(after_fork_orig);
	cov_py.DecRef(threading_mod);
	threading_mod = after_fork_orig = after_fork_ours = NULL;
}

int cov_hooks_fork_by_trace(void)
{
	return no_register_at_fork;
}

/* Every second, GIL held: threading imported since, on 2.7 and 3.6. */
void cov_hooks_sweep(void)
{
	if (no_register_at_fork && !threading_mod)
		wrap_after_fork();
}

int cov_hooks_install(char *err, size_t len)
{
	if (!exit_fn && !(exit_fn = cov_py.CFunction_NewEx(&exit_def, NULL, NULL)))
		goto fail;
	if (call("atexit", "register", NULL, exit_fn)) {
		strncpy(err, "atexit.register failed", len - 1);
		return -1;
	}
	if (!has("os", "register_at_fork")) {
		if (wrap_after_fork())
			goto undo;
		no_register_at_fork = 1;
	} else if (!fork_registered) {
		if (!(fork_fn = cov_py.CFunction_NewEx(&fork_def, NULL, NULL)) ||
		    call("os", "register_at_fork", "after_in_child", fork_fn))
			goto undo;
		fork_registered = 1;	/* for good: it cannot be removed */
	}
	return 0;
undo:
	call("atexit", "unregister", NULL, exit_fn);
fail:
	cov_py.Err_Clear();
	strncpy(err, "register the exit and fork hooks failed", len - 1);
	return -1;
}

/* atexit.unregister(exit_fn); 2.7 has none: our entries out of the list
 * its atexit keeps, _exithandlers, of (func, args, kwargs). */
static void unregister_exit(void)
{
	PyObject *mod, *list;

	if (has("atexit", "unregister")) {
		call("atexit", "unregister", NULL, exit_fn);
		return;
	}
	mod = cov_py.Import_ImportModule("atexit");
	list = mod ? cov_py.Object_GetAttrString(mod, "_exithandlers") : NULL;
	for (Py_ssize_t i = list ? cov_py.List_Size(list) - 1 : -1; i >= 0; i--) {
		PyObject *entry = cov_py.List_GetItem(list, i);

		if (entry && !strcmp(cov_type_name(entry), "tuple") &&
		    cov_py.Tuple_Size(entry) > 0 && cov_py.Tuple_GetItem(entry, 0) == exit_fn)
			cov_py.List_SetSlice(list, i, i + 1, NULL);
	}
	if (list)
		cov_py.DecRef(list);
	if (mod)
		cov_py.DecRef(mod);
	cov_py.Err_Clear();
}

void cov_hooks_remove(void)
{
	if (exit_fn)
		unregister_exit();
	no_register_at_fork = 0;
	unwrap_after_fork();
}
