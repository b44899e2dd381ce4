/*
 * collect.c - the collectors: how executed lines reach the store.
 *
 * CPython >= 3.12: sys.monitoring (PEP 669) with a free tool id and only the
 * LINE event, set globally.  Setting global events instruments the code of
 * every frame already executing (Python/instrumentation.c,
 * instrument_all_executing_code_objects), so a loop that was running at
 * attach reports its lines.  The callback returns DISABLE: each line costs
 * one call, then nothing.  On 3.13+ PY_START is enabled too (its callback
 * only returns DISABLE): without it the first LINE event of a code object
 * whose body shares the def/lambda line is lost, because RESUME is
 * specialised to RESUME_CHECK and _Py_call_instrumentation_line no longer
 * recognises it (seen on 3.13.0; coverage.py's sysmon core registers
 * PY_START anyway and so never meets it).  With --branch, the branch
 * events (BRANCH; on 3.14+ BRANCH_LEFT and BRANCH_RIGHT) and JUMP too,
 * turned into arcs by arcs.c.
 *
 * CPython <= 3.11: a C trace function on every thread state, and a sweep
 * that knows per thread whether it is still there: payload/trace.c.
 *
 * The sweep here (3.12+) only checks, without changing anything, that the
 * program has not freed our tool id or changed its events.
 *
 * All of it runs with the GIL held.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "arcs.h"
#include "collect.h"
#include "store.h"
#include "payload.h"
#include "trace.h"

static struct pyapi *py;
static PyObject *disable;		/* sys.monitoring.DISABLE */
static PyObject *monitoring;		/* sys.monitoring */
static PyObject *line_cb, *start_cb;	/* our builtin function objects */
static int tool_id = -1;
static long ev_line;			/* sys.monitoring.events.LINE */
static long ev_start;			/* PY_START (3.13+), or 0 */
/* With --branch: BRANCH (3.12, 3.13) or BRANCH_LEFT and BRANCH_RIGHT
 * (3.14+), and JUMP; else 0. */
static long ev_branch, ev_left, ev_right, ev_jump;
static int branch_mode;
static PyObject *branch_cb, *left_cb, *right_cb, *jump_cb;
static int64_t monitoring_lost_ns;	/* the program changed our tool since */


/* ---- the hot path ------------------------------------------------------ */

static struct cov_file *first_sight(PyObject *name)
{
	PyObject *t, *v, *tb;
	struct cov_file *f = NULL;
	const char *s;

	py->Err_Fetch(&t, &v, &tb);	/* never disturb an exception in flight */
	s = py->Unicode_AsUTF8AndSize(name, NULL);
	if (s) {
		py->IncRef(name);	/* keeps its address from being reused */
		if (!(f = cov_store_add(name, s)))
			py->DecRef(name);
	}
	py->Err_Clear();
	py->Err_Restore(t, v, tb);
	return f;
}

struct cov_file *cov_collect_file(PyObject *code)
{
	PyObject *name = *(PyObject **)((char *)code + py->off_co_filename);
	struct cov_file *f = cov_store_lookup(name);

	return f ? f : first_sight(name);
}

static PyObject *keep(void);

/* sys.monitoring LINE callback: (code, line_number) -> DISABLE.  Events
 * are global on 3.12+: Python code our own thread runs (an attribute of a
 * module that is a class, typing.io) is not the program's, and is not
 * disabled either, so the program's threads still report it. */
static PyObject *on_line(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	struct cov_file *f;

	(void)self;
	if (cov_collector_thread)
		return keep();
	if (n >= 2 && (f = cov_collect_file(args[0])) && f->in_scope) {
		cov_store_mark(f, (int)py->Long_AsLong(args[1]));
		if (branch_mode)
			cov_arcs_code(args[0], f);	/* its table, once */
	}
	py->IncRef(disable);
	return disable;
}

/* The table of an event's code object, or NULL if it is not measured. */
static struct cov_code *code_of(PyObject *const *args, Py_ssize_t n)
{
	struct cov_file *f;

	if (n < 3 || !(f = cov_collect_file(args[0])) || !f->in_scope)
		return NULL;
	return cov_arcs_code(args[0], f);
}

static PyObject *keep(void)
{
	py->IncRef(py->None);
	return py->None;
}

/* BRANCH (code, offset, destination): on until both directions ran. */
static PyObject *on_branch(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	struct cov_code *c = cov_collector_thread ? NULL : code_of(args, n);

	(void)self;
	if (cov_collector_thread)
		return keep();
	if (c && !cov_arcs_branch(c, py->Long_AsLong(args[1]), py->Long_AsLong(args[2])))
		return keep();
	py->IncRef(disable);
	return disable;
}

/* BRANCH_LEFT, BRANCH_RIGHT (3.14+): (code, offset, destination) -> DISABLE,
 * each direction on its own. */
static PyObject *on_left(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	struct cov_code *c = code_of(args, n);

	(void)self;
	if (c)
		cov_arcs_taken(c, py->Long_AsLong(args[1]), 0);
	py->IncRef(disable);
	return disable;
}

static PyObject *on_right(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	struct cov_code *c = code_of(args, n);

	(void)self;
	if (c)
		cov_arcs_taken(c, py->Long_AsLong(args[1]), 1);
	py->IncRef(disable);
	return disable;
}

/* JUMP (code, offset, destination) -> DISABLE */
static PyObject *on_jump(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	struct cov_code *c = cov_collector_thread ? NULL : code_of(args, n);

	(void)self;
	if (cov_collector_thread)
		return keep();
	if (c)
		cov_arcs_jump(c, py->Long_AsLong(args[1]));
	py->IncRef(disable);
	return disable;
}

/* sys.monitoring PY_START callback (3.13+): (code, offset) -> DISABLE */
static PyObject *on_start(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	(void)args;
	(void)n;
	py->IncRef(disable);
	return disable;
}

static struct py_methoddef line_def = {
	"covinject_line", (void *)on_line, PY_METH_FASTCALL, NULL
};
static struct py_methoddef start_def = {
	"covinject_start", (void *)on_start, PY_METH_FASTCALL, NULL
};
static struct py_methoddef branch_def = {
	"covinject_branch", (void *)on_branch, PY_METH_FASTCALL, NULL
};
static struct py_methoddef left_def = {
	"covinject_branch_left", (void *)on_left, PY_METH_FASTCALL, NULL
};
static struct py_methoddef right_def = {
	"covinject_branch_right", (void *)on_right, PY_METH_FASTCALL, NULL
};
static struct py_methoddef jump_def = {
	"covinject_jump", (void *)on_jump, PY_METH_FASTCALL, NULL
};
/* ---- helpers ----------------------------------------------------------- */

static void py_error(char *err, size_t len, const char *what)
{
	PyObject *t = NULL, *v = NULL, *tb = NULL, *s = NULL;
	const char *msg = NULL;

	py->Err_Fetch(&t, &v, &tb);
	if (v && (s = py->Object_Str(v)))
		msg = py->Unicode_AsUTF8AndSize(s, NULL);
	snprintf(err, len, "%s: %s", what, msg ? msg : "Python error");
	if (s)
		py->DecRef(s);
	py->Err_Clear();
	if (t)
		py->DecRef(t);
	if (v)
		py->DecRef(v);
	if (tb)
		py->DecRef(tb);
}

/* Call obj.name(fmt, ...) and drop the result; 0 or -1 with err set. */
#define CALL(err, len, obj, name, ...) call_done(err, len, name, \
	py->Object_CallMethod(obj, name, __VA_ARGS__))

static int call_done(char *err, size_t len, const char *what, PyObject *r)
{
	if (!r) {
		py_error(err, len, what);
		return -1;
	}
	py->DecRef(r);
	return 0;
}

static int is_none(PyObject *o)
{
	return o == py->None;
}

/* ---- sys.monitoring (3.12+) -------------------------------------------- */

/* Prefer COVERAGE_ID (1); never take an id another tool holds. */
static int free_tool_id(char *err, size_t len)
{
	static const int order[] = { 1, 3, 4, 2, 0, 5 };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		PyObject *r = py->Object_CallMethod(monitoring, "get_tool", "i", order[i]);
		int taken;

		if (!r) {
			py_error(err, len, "sys.monitoring.get_tool");
			return -1;
		}
		taken = !is_none(r);
		py->DecRef(r);
		if (!taken)
			return order[i];
	}
	snprintf(err, len, "every sys.monitoring tool id (0-5) is in use");
	return -1;
}

static long event_bit(const char *name)
{
	PyObject *events = py->Object_GetAttrString(monitoring, "events"), *v;
	long bit = -1;

	if (events && (v = py->Object_GetAttrString(events, name))) {
		bit = py->Long_AsLong(v);
		py->DecRef(v);
	}
	if (events)
		py->DecRef(events);
	return bit;
}

static int register_cb(char *err, size_t len, long ev, PyObject *cb)
{
	return CALL(err, len, monitoring, "register_callback", "ilO", tool_id, ev, cb);
}

/* 3.14+: one event per direction, so each can be disabled on its own. */
static int branch_directions(char *err, size_t len)
{
	ev_left = event_bit("BRANCH_LEFT");
	ev_right = event_bit("BRANCH_RIGHT");
	py->Err_Clear();
	if (ev_left <= 0 || ev_right <= 0) {
		ev_left = ev_right = 0;
		return 0;
	}
	if (!(left_cb = py->CFunction_NewEx(&left_def, NULL, NULL)) ||
	    !(right_cb = py->CFunction_NewEx(&right_def, NULL, NULL))) {
		py_error(err, len, "sys.monitoring");
		return -1;
	}
	return register_cb(err, len, ev_left, left_cb) ||
	       register_cb(err, len, ev_right, right_cb);
}

/* --branch: the opcode tables, the branch callbacks and JUMP's. */
static int branch_start(char *err, size_t len)
{
	if (cov_arcs_init(py, err, len) || branch_directions(err, len))
		return -1;
	if ((ev_jump = event_bit("JUMP")) <= 0 ||
	    !(jump_cb = py->CFunction_NewEx(&jump_def, NULL, NULL)))
		goto fail_py;
	if (register_cb(err, len, ev_jump, jump_cb))
		return -1;
	if (ev_left)
		return 0;
	if ((ev_branch = event_bit("BRANCH")) <= 0 ||
	    !(branch_cb = py->CFunction_NewEx(&branch_def, NULL, NULL)))
		goto fail_py;
	return register_cb(err, len, ev_branch, branch_cb);
fail_py:
	py_error(err, len, "sys.monitoring");
	return -1;
}

static int monitoring_start(char *err, size_t len)
{
	PyObject *sys = py->Import_ImportModule("sys");
	int id;

	if (!sys || !(monitoring = py->Object_GetAttrString(sys, "monitoring"))) {
		if (sys)
			py->DecRef(sys);
		py_error(err, len, "sys.monitoring");
		return -1;
	}
	py->DecRef(sys);
	if (!(disable = py->Object_GetAttrString(monitoring, "DISABLE")) ||
	    (ev_line = event_bit("LINE")) <= 0)
		goto fail_py;
	if ((id = free_tool_id(err, len)) < 0)
		return -1;
	if (CALL(err, len, monitoring, "use_tool_id", "is", id, "covinject"))
		return -1;
	tool_id = id;
	if (!(line_cb = py->CFunction_NewEx(&line_def, NULL, NULL)))
		goto fail_py;
	if (CALL(err, len, monitoring, "register_callback", "ilO", id,
		 ev_line, line_cb))
		return -1;
	if (py->hex >= 0x030d0000) {
		if ((ev_start = event_bit("PY_START")) <= 0 ||
		    !(start_cb = py->CFunction_NewEx(&start_def, NULL, NULL)))
			goto fail_py;
		if (CALL(err, len, monitoring, "register_callback", "ilO", id,
			 ev_start, start_cb))
			return -1;
	}
	if (branch_mode && branch_start(err, len))
		return -1;
	if (CALL(err, len, monitoring, "set_events", "il", id,
		 ev_line | ev_start | ev_branch | ev_left | ev_right | ev_jump))
		return -1;
	return 0;
fail_py:
	py_error(err, len, "sys.monitoring");
	return -1;
}

static void monitoring_stop(void)
{
	char ignore[64];

	if (tool_id >= 0) {
		CALL(ignore, sizeof(ignore), monitoring, "set_events", "ii", tool_id, 0);
		CALL(ignore, sizeof(ignore), monitoring, "register_callback", "ilO",
		     tool_id, ev_line, py->None);
		if (ev_start > 0)
			CALL(ignore, sizeof(ignore), monitoring, "register_callback",
			     "ilO", tool_id, ev_start, py->None);
		if (ev_branch > 0)
			register_cb(ignore, sizeof(ignore), ev_branch, py->None);
		if (ev_left > 0)
			register_cb(ignore, sizeof(ignore), ev_left, py->None);
		if (ev_right > 0)
			register_cb(ignore, sizeof(ignore), ev_right, py->None);
		if (ev_jump > 0)
			register_cb(ignore, sizeof(ignore), ev_jump, py->None);
		CALL(ignore, sizeof(ignore), monitoring, "free_tool_id", "i", tool_id);
	}
	tool_id = -1;
}

/* ---- interface --------------------------------------------------------- */

static int use_monitoring(void)
{
	return py->hex >= 0x030c0000;
}

int cov_collect_start(struct pyapi *api, int branch, struct cov_collect_info *info,
		      char *err, size_t len)
{
	py = api;
	memset(info, 0, sizeof(*info));
	info->tool_id = -1;
	branch_mode = branch;
	ev_branch = ev_left = ev_right = ev_jump = 0;
	if (branch && !use_monitoring()) {
		snprintf(err, len, "--branch needs Python 3.12 or later (sys.monitoring "
			 "branch events)");
		return -1;
	}
	if (use_monitoring()) {
		monitoring_lost_ns = 0;
		if (monitoring_start(err, len)) {
			monitoring_stop();
			return -1;
		}
		info->tool_id = tool_id;
		return 0;
	}
	return cov_trace_start(py, info, err, len);
}

int cov_collect_snapshot(struct cov_snap *s)
{
	if (cov_store_snapshot(s))
		return -1;
	if (branch_mode && cov_arcs_snapshot(s)) {
		cov_snap_free(s);
		return -1;
	}
	return 0;
}

void cov_collect_new_thread(void)
{
	if (py && !use_monitoring())
		cov_trace_new_thread();
}

/* 3.12+: our tool id still ours, our events still set?  Read only. */
static void monitoring_sweep(struct cov_sweep *out)
{
	PyObject *name = NULL, *ev = NULL;
	uint32_t lost = 0;
	struct timespec ts;

	if (tool_id < 0)
		return;
	name = py->Object_CallMethod(monitoring, "get_tool", "i", tool_id);
	if (!name || name == py->None ||
	    strcmp(py->Unicode_AsUTF8AndSize(name, NULL) ?: "", "covinject"))
		lost |= COV_MON_TOOL;
	else if (!(ev = py->Object_CallMethod(monitoring, "get_events", "i", tool_id)) ||
		 py->Long_AsLong(ev) != (ev_line | ev_start | ev_branch | ev_left | ev_right |
					 ev_jump))
		lost |= COV_MON_EVENTS;
	py->Err_Clear();
	if (name)
		py->DecRef(name);
	if (ev)
		py->DecRef(ev);
	if (lost && !monitoring_lost_ns) {
		clock_gettime(CLOCK_REALTIME, &ts);
		monitoring_lost_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	} else if (!lost) {
		monitoring_lost_ns = 0;
	}
	out->monitoring_lost = lost;
	out->monitoring_lost_ns = monitoring_lost_ns;
}

void cov_collect_sweep(struct cov_sweep *out)
{
	memset(out, 0, sizeof(*out));
	if (!py)
		return;
	if (use_monitoring())
		monitoring_sweep(out);
	else
		cov_trace_sweep(out);
}

/*
 * After a reset or in a forked child: the data starts afresh, so lines that
 * returned DISABLE must fire again.  sys.monitoring.restart_events() re-arms
 * them for every tool, not only ours (3.12+; <= 3.11 needs nothing).
 */
void cov_collect_rearm(void)
{
	char ignore[64];

	cov_store_zero();
	if (branch_mode)
		cov_arcs_zero();
	if (use_monitoring() && monitoring)
		CALL(ignore, sizeof(ignore), monitoring, "restart_events", "");
}

static void release_key(const void *key)
{
	py->DecRef((PyObject *)key);
}

void cov_collect_stop(void)
{
	if (use_monitoring())
		monitoring_stop();
	else
		cov_trace_stop();
}

/* Drop every object we hold; the collector must be stopped. */
void cov_collect_release(void)
{
	PyObject **objs[] = { &line_cb, &start_cb, &branch_cb, &left_cb,
			      &right_cb, &jump_cb,
			      &disable, &monitoring };

	if (branch_mode)
		cov_arcs_clear();
	cov_store_clear(release_key);
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		if (*objs[i])
			py->DecRef(*objs[i]);
		*objs[i] = NULL;
	}
}
