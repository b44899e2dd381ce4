/*
 * hooks.c - the interpreter's own hooks that keep data from being lost:
 *
 *   atexit.register(covinject_exit)  a process that ends normally (return
 *       from main, sys.exit, a SIGTERM that Python turns into SystemExit, a
 *       gunicorn worker recycled by max_requests) writes its final snapshot;
 *       atexit.unregister at stop.
 *   os.register_at_fork(after_in_child=covinject_fork)  a child forked
 *       while collecting starts its own payload thread, from empty data,
 *       into its own file.  CPython offers no way to unregister this one: after
 *       stop it stays registered and does nothing.
 *
 * Both run in the interpreter's thread with the GIL held, after CPython has
 * made its own state consistent (PyOS_AfterFork_Child runs first).
 */
#include <string.h>
#include "payload.h"

static PyObject *exit_fn, *fork_fn;
static int fork_registered;

static PyObject *none(void)
{
	cov_py.IncRef(cov_py.None);
	return cov_py.None;
}

static PyObject *on_exit_cb(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	(void)args;
	(void)n;
	cov_on_exit();
	return none();
}

static PyObject *on_fork_cb(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	(void)args;
	(void)n;
	cov_on_fork_child();
	return none();
}

static struct py_methoddef exit_def = {
	"covinject_exit", (void *)on_exit_cb, PY_METH_FASTCALL, NULL
};
static struct py_methoddef fork_def = {
	"covinject_fork", (void *)on_fork_cb, PY_METH_FASTCALL, NULL
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

int cov_hooks_install(char *err, size_t len)
{
	if (!exit_fn && !(exit_fn = cov_py.CFunction_NewEx(&exit_def, NULL, NULL)))
		goto fail;
	if (call("atexit", "register", NULL, exit_fn)) {
		strncpy(err, "atexit.register failed", len - 1);
		return -1;
	}
	if (!fork_registered) {
		if (!(fork_fn = cov_py.CFunction_NewEx(&fork_def, NULL, NULL)) ||
		    call("os", "register_at_fork", "after_in_child", fork_fn))
			goto fail;
		fork_registered = 1;	/* for good: it cannot be removed */
	}
	return 0;
fail:
	cov_py.Err_Clear();
	strncpy(err, "register the exit and fork hooks failed", len - 1);
	return -1;
}

void cov_hooks_remove(void)
{
	if (exit_fn)
		call("atexit", "unregister", NULL, exit_fn);
}
