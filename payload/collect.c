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
 * Each sub-interpreter has a sys.monitoring of its own: those that share
 * the main interpreter's allocator and GIL get our tool too, on a visit
 * from our thread (interps.c), at start and from the sweep that first
 * meets them.
 *
 * CPython <= 3.11: a C trace function on every thread state of every
 * interpreter, and a sweep that knows per thread whether it is still
 * there: payload/trace.c.  Or, with start --collector probe (3.9-3.11),
 * bytecode probes, with the trace function only for frames that were
 * running at start: payload/probes.c.
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
#include "interps.h"
#include "payload.h"
#include "probes.h"
#include "store.h"
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
static int probe_mode;			/* this start chose the probes (3.9-3.11) */
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
static int free_tool_id(PyObject *mon, char *err, size_t len)
{
	static const int order[] = { 1, 3, 4, 2, 0, 5 };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		PyObject *r = py->Object_CallMethod(mon, "get_tool", "i", order[i]);
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

/* An event's bit: the same constants in every interpreter. */
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

static long all_events(void)
{
	return ev_line | ev_start | ev_branch | ev_left | ev_right | ev_jump;
}

/* Our callbacks (each with its event, 0 if not used), for arm and disarm. */
static int each_cb(PyObject *mon, int id, char *err, size_t len, int none)
{
	const long evs[] = { ev_line, ev_start, ev_branch, ev_left, ev_right, ev_jump };
	PyObject *cbs[] = { line_cb, start_cb, branch_cb, left_cb, right_cb, jump_cb };
	int rc = 0;

	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] > 0 && CALL(err, len, mon, "register_callback", "ilO", id,
				       evs[i], none ? py->None : cbs[i]))
			rc = -1;
	return rc;
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
	return 0;
}

/* --branch: the opcode tables, the branch callbacks and JUMP's. */
static int branch_prepare(char *err, size_t len)
{
	if (cov_arcs_init(py, err, len) || branch_directions(err, len))
		return -1;
	if ((ev_jump = event_bit("JUMP")) <= 0 ||
	    !(jump_cb = py->CFunction_NewEx(&jump_def, NULL, NULL)))
		goto fail_py;
	if (ev_left)
		return 0;
	if ((ev_branch = event_bit("BRANCH")) <= 0 ||
	    !(branch_cb = py->CFunction_NewEx(&branch_def, NULL, NULL)))
		goto fail_py;
	return 0;
fail_py:
	py_error(err, len, "sys.monitoring");
	return -1;
}

/*
 * Our tool in the current interpreter's sys.monitoring mon: a free id, our
 * callbacks, our events.  *id is set as soon as the id is ours, so that
 * disarm can undo a failure half-way.
 *
 * After an earlier session in this process, restart_events too: a line
 * that returned DISABLE then stays disabled for the tool id in every code
 * object that has not run since (CPython re-instruments a code object
 * only for events that changed from its point of view: 3.12-3.15), and
 * would never count again.  It re-arms other tools' disabled events too,
 * which then only cost them one more callback each.
 */
static int arm(PyObject *mon, int *id, char *err, size_t len)
{
	int free_id = free_tool_id(mon, err, len);

	if (free_id < 0 || CALL(err, len, mon, "use_tool_id", "is", free_id, "covinject"))
		return -1;
	*id = free_id;
	if (each_cb(mon, free_id, err, len, 0) ||
	    CALL(err, len, mon, "set_events", "il", free_id, all_events()))
		return -1;
	return cov_state.starts > 1 ? CALL(err, len, mon, "restart_events", "") : 0;
}

static void disarm(PyObject *mon, int id)
{
	char ignore[64];

	CALL(ignore, sizeof(ignore), mon, "set_events", "ii", id, 0);
	each_cb(mon, id, ignore, sizeof(ignore), 1);
	CALL(ignore, sizeof(ignore), mon, "free_tool_id", "i", id);
}

static int monitoring_start(char *err, size_t len)
{
	PyObject *sys = py->Import_ImportModule("sys");

	if (!sys || !(monitoring = py->Object_GetAttrString(sys, "monitoring"))) {
		if (sys)
			py->DecRef(sys);
		py_error(err, len, "sys.monitoring");
		return -1;
	}
	py->DecRef(sys);
	if (!(disable = py->Object_GetAttrString(monitoring, "DISABLE")) ||
	    (ev_line = event_bit("LINE")) <= 0 ||
	    !(line_cb = py->CFunction_NewEx(&line_def, NULL, NULL)))
		goto fail_py;
	if (py->hex >= 0x030d0000 &&
	    ((ev_start = event_bit("PY_START")) <= 0 ||
	     !(start_cb = py->CFunction_NewEx(&start_def, NULL, NULL))))
		goto fail_py;
	if (branch_mode && branch_prepare(err, len))
		return -1;
	return arm(monitoring, &tool_id, err, len);
fail_py:
	py_error(err, len, "sys.monitoring");
	return -1;
}

/* ---- sub-interpreters (3.12+) ------------------------------------------ */

/*
 * Each interpreter has its own sys.monitoring.  One that shares the main
 * interpreter's allocator and GIL (interps.c) gets our tool too, with the
 * same callback objects, from our thread on a visit: at start, and at the
 * sweep that first meets it, so within a second of its creation.  Reset
 * and stop visit it again.  Interpreters are known by id, never reused.
 */
#define MAX_SUBS 256

enum sub_kind { SUB_OURS, SUB_ISOLATED, SUB_FAILED };

struct sub {
	long long id;
	int tool;		/* our tool id there, or -1 */
	enum sub_kind kind;
	int live;		/* met by the walk in progress */
};

static struct sub subs[MAX_SUBS];
static int nsubs;

enum visit_what { V_ARM, V_DISARM, V_RESTART };

struct visit {
	struct sub *s;
	enum visit_what what;
};

/* In the sub-interpreter, on the visit's thread state. */
static void in_sub(void *arg)
{
	struct visit *v = arg;
	PyObject *mon = py->Sys_GetObject("monitoring"), *d = NULL;	/* borrowed */
	char ignore[COV_ERR_MAX];

	if (!mon) {
		v->s->kind = SUB_FAILED;
		return;
	}
	switch (v->what) {
	case V_ARM:
		/* DISABLE is one static object on 3.12-3.15: callbacks return ours */
		d = py->Object_GetAttrString(mon, "DISABLE");
		if (d == disable && !arm(mon, &v->s->tool, ignore, sizeof(ignore))) {
			v->s->kind = SUB_OURS;
			break;
		}
		if (v->s->tool >= 0)
			disarm(mon, v->s->tool);
		v->s->tool = -1;
		v->s->kind = SUB_FAILED;
		break;
	case V_DISARM:
		disarm(mon, v->s->tool);
		v->s->tool = -1;
		break;
	case V_RESTART:
		CALL(ignore, sizeof(ignore), mon, "restart_events", "");
		break;
	}
	if (d)
		py->DecRef(d);
	py->Err_Clear();
}

static struct sub *sub_of(long long id)
{
	for (int i = 0; i < nsubs; i++)
		if (subs[i].id == id)
			return &subs[i];
	return NULL;
}

/*
 * One walk of the interpreters: each met is marked live; the first one
 * that wants a visit (new, with arm_new: arm; want: that visit to one of
 * ours) gets it, and
 * the walk ends there, since a visit may release the GIL and the list may
 * change.  1 if it visited one, 0 if the walk went to its end.
 */
static int walk_once(int want, int arm_new, unsigned gen)
{
	PyInterpreterState *main = py->InterpreterState_Main();
	static unsigned done[MAX_SUBS];	/* the generation a sub was visited in */

	for (PyInterpreterState *in = py->InterpreterState_Head(); in;
	     in = py->InterpreterState_Next(in)) {
		long long id = py->InterpreterState_GetID(in);
		struct sub *s = in == main ? NULL : sub_of(id);
		struct visit v = { s, V_ARM };

		if (in == main)
			continue;
		if (!s && arm_new && nsubs < MAX_SUBS) {
			s = v.s = &subs[nsubs++];
			*s = (struct sub){ id, -1, SUB_ISOLATED, 1 };
			done[s - subs] = gen;
			if (!cov_interp_shared(py, in))
				continue;
			s->kind = SUB_FAILED;
		} else if (!s) {
			continue;	/* beyond our table: not measured */
		} else {
			s->live = 1;
			if (want < 0 || s->kind != SUB_OURS || done[s - subs] == gen)
				continue;
			v.what = (enum visit_what)want;
			done[s - subs] = gen;
		}
		cov_interp_visit(py, in, in_sub, &v);
		return 1;
	}
	return 0;
}

/*
 * Every sub-interpreter: with arm_new, new ones classified (and armed when
 * they share the main one's allocator); with want >= 0, that visit to each
 * one of ours; gone ones forgotten.  0, or -1 if the process began exiting while
 * a visit had released the GIL: then nothing more may touch Python.
 */
static int subs_walk(int want, int arm_new)
{
	static unsigned gen;
	int n = 0, j = 0;

	gen++;
	for (int i = 0; i < nsubs; i++)
		subs[i].live = 0;
	while (walk_once(want, arm_new, gen)) {
		if (cov_exiting())
			return -1;
		if (++n > 4 * MAX_SUBS)
			break;
		for (int i = 0; i < nsubs; i++)
			subs[i].live = 0;	/* the walk starts again */
	}
	for (int i = 0; i < nsubs; i++)
		if (subs[i].live)
			subs[j++] = subs[i];
	nsubs = j;
	return 0;
}

/* Our tool out of every interpreter that has it.  Not at exit
 * (cov_on_exit): the sub-interpreters end with the process. */
static void monitoring_stop(void)
{
	if (tool_id < 0)
		return;
	if (!cov_exiting() && subs_walk(V_DISARM, 0))
		return;	/* exiting since: nothing more touches Python */
	disarm(monitoring, tool_id);
	tool_id = -1;
	nsubs = 0;
}

/* Interpreters measured, and those that never can be (3.12+). */
static void subs_count(uint32_t *measured, uint32_t *isolated)
{
	*measured = tool_id >= 0;
	*isolated = 0;
	for (int i = 0; i < nsubs; i++) {
		*measured += subs[i].kind == SUB_OURS;
		*isolated += subs[i].kind == SUB_ISOLATED;
	}
}

/* ---- interface --------------------------------------------------------- */

static int use_monitoring(void)
{
	return py->hex >= 0x030c0000;
}

int cov_collect_start(struct pyapi *api, const struct cov_collect_opts *o,
		      struct cov_collect_info *info, char *err, size_t len)
{
	int branch = o->branch;

	py = api;
	memset(info, 0, sizeof(*info));
	info->tool_id = -1;
	branch_mode = branch;
	probe_mode = 0;
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
		nsubs = 0;
		if (subs_walk(-1, 1)) {
			snprintf(err, len, "the process began exiting");
			return -1;
		}
		return 0;
	}
	if (o->collector != COV_COLLECTOR_TRACE && py->hex >= 0x03090000) {
		char why[COV_WHY_MAX];

		if (o->collector == COV_COLLECTOR_AUTO &&
		    cov_probes_unsafe(py, info->trace_why, sizeof(info->trace_why)))
			return cov_trace_start(py, 1, info, err, len);
		if (!cov_probes_start(py, o, info, why, sizeof(why))) {
			probe_mode = info->probes = 1;
			return 0;
		}
		if (o->collector == COV_COLLECTOR_PROBE) {
			snprintf(err, len, "%s", why);
			return -1;
		}
		snprintf(info->trace_why, sizeof(info->trace_why), "the probes could "
			 "not start: %.200s", why);
		memset(info, 0, offsetof(struct cov_collect_info, trace_why));
		info->tool_id = -1;
	}
	return cov_trace_start(py, 1, info, err, len);
}

int cov_collect_probing(char *why, size_t len)
{
	const char *w;

	if (cov_probes_active())
		return 1;
	if (probe_mode && (w = cov_probes_switched()))
		snprintf(why, len, "%s", w);
	return 0;
}

int cov_collect_pass(void)
{
	return cov_probes_pass();	/* 0 unless the probes run */
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

void cov_collect_acquired(void)
{
	if (py && !use_monitoring())
		cov_trace_acquired();
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
		 py->Long_AsLong(ev) != all_events())
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
	if (use_monitoring()) {
		monitoring_sweep(out);
		subs_walk(-1, 1);	/* new sub-interpreters */
	} else if (cov_probes_active()) {
		cov_probes_sweep(out);
	} else {
		cov_trace_sweep(out);
	}
}

void cov_collect_interps(uint32_t total, uint32_t *measured, uint32_t *isolated)
{
	*measured = total;	/* <= 3.11: every interpreter's threads */
	*isolated = 0;
	if (py && use_monitoring())
		subs_count(measured, isolated);
}

/*
 * After a reset or in a forked child: the data starts afresh, so lines that
 * returned DISABLE must fire again.  sys.monitoring.restart_events() re-arms
 * them for every tool, not only ours, in one interpreter: ours are visited
 * for theirs (3.12+; <= 3.11 needs nothing).
 */
void cov_collect_rearm(void)
{
	char ignore[64];

	cov_store_zero();
	if (branch_mode)
		cov_arcs_zero();
	if (cov_probes_active())
		cov_probes_rearm();
	if (use_monitoring() && monitoring) {
		CALL(ignore, sizeof(ignore), monitoring, "restart_events", "");
		subs_walk(V_RESTART, 0);
	}
}

static void release_key(const void *key)
{
	py->DecRef((PyObject *)key);
}

void cov_collect_stop(void)
{
	if (use_monitoring())
		monitoring_stop();
	else if (cov_probes_active())
		cov_probes_stop();
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
