/*
 * trace.c - the collector of CPython 3.9-3.11: a C trace function on every
 * thread state (of every interpreter), and the sweep that knows, per
 * thread, whether it is still there.
 *
 * The trace function is on_trace with, as its object, `tracer`: a builtin
 * function made at run time (PyCFunction_NewEx on a static method table).
 * sys.gettrace() returns that object (Python/sysmodule.c, sys_gettrace:
 * tstate->c_traceobj), so code that saves and restores the trace function,
 *
 *     old = sys.gettrace(); sys.settrace(None); ...; sys.settrace(old)
 *
 * (doctest, bdb, test.support.no_tracing) restores `tracer`: sys.settrace
 * then installs CPython's trampoline with it (sys_settrace ->
 * trace_trampoline), which calls it as a Python tracer on the next "call"
 * event; it puts on_trace back in that thread and handles the event.  Only
 * on "call": a "line" event reaching it through a frame's f_trace while
 * another tracer is installed must not undo that tracer (coverage.py's
 * CTracer_call reasons the same way).  threading.settrace gets the same
 * object, so threads started later, and threading.settrace(
 * threading.gettrace()), behave alike.
 *
 * Frames measured get f_trace = tracer (if theirs is empty), as coverage.py
 * does: after a restore, the lines of frames already running reach the
 * trampoline, hence us, before the next call.  stop takes it back from
 * every frame on a thread's stack.
 *
 * covinject never puts itself back by itself: a thread whose trace function
 * the program removed (sys.settrace(None), bdb's set_continue) or replaced
 * (a debugger, another coverage tool) keeps what the program chose.  The
 * sweep (every second, and before each snapshot) notices, per thread, and
 * reports it in the status block.
 *
 * Everything here runs with the GIL held; the GIL is the only lock of the
 * variables below.  A C tracer gets line events of frames already running:
 * maybe_call_line_trace (3.9, 3.10) and the 3.11 tracing path need only
 * tstate->c_tracefunc, not frame->f_trace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "collect.h"
#include "oldapi.h"
#include "payload.h"
#include "probes.h"
#include "trace.h"

static struct pyapi *py;
static PyObject *tracer;		/* our trace object: sys.gettrace() */
static PyObject *prev_thread_hook;	/* threading._trace_hook before us */
static int hook_set;			/* we called threading.settrace */
static int active;			/* between trace_start and trace_stop */
/* --collector probe: the main interpreter's threads are not ours to trace
 * (their code is probed), only sub-interpreters' (probes.c). */
static int skip_main;
/* Offsets found at run time: PyThreadState c_tracefunc, c_traceobj,
 * native_thread_id; PyFrameObject f_trace (0: not probed yet). */
static Py_ssize_t off_func = -1, off_obj = -1, off_tid = -1, off_f_trace;

/* What the sweep knows of each thread state, by PyThreadState_GetID (never
 * reused), rebuilt at each sweep from the live ones. */
enum kind { T_OURS, T_REMOVED, T_REPLACED, T_FOREIGN };

struct seen {
	unsigned long long id;
	enum kind kind;
	int64_t since_ns;
	int32_t tid;
};

static struct seen *seen, *next_seen;
static size_t nseen, seen_cap;
static int64_t hook_lost_ns;

#define SLOT(base, off, type) (*(type *)((char *)(base) + (off)))

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the hot path ------------------------------------------------------ */

/* f_trace of a frame we measure: ours if empty, never someone else's. */
static void claim_frame(PyFrameObject *frame)
{
	PyObject **slot;

	if (off_f_trace <= 0)
		return;
	slot = &SLOT(frame, off_f_trace, PyObject *);
	if (!*slot) {
		py->IncRef(tracer);
		*slot = tracer;
	}
}

static void find_f_trace(PyFrameObject *frame);
static void note_ours(void);

static int on_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
	struct cov_file *f;
	PyObject *code;

	(void)obj;
	(void)arg;
	if (__builtin_expect(cov_adopt_pending, 0))
		cov_fork_adopt();	/* 3.6, a child of os.fork: payload.c */
	if (what != PY_TRACE_LINE && what != PY_TRACE_CALL)
		return 0;
	code = py->Frame_GetCode(frame);
	if (cov_probes_variant(code)) {
		/* --collector probe: its probes record its lines */
		if (what == PY_TRACE_CALL && py->off_f_trace_lines > 0)
			*((char *)frame + py->off_f_trace_lines) = 0;
		py->DecRef(code);
		return 0;
	}
	f = cov_collect_file(code);
	py->DecRef(code);
	if (f && f->in_scope) {
		if (!off_f_trace)
			find_f_trace(frame);
		claim_frame(frame);
		if (what == PY_TRACE_LINE)
			cov_store_mark(f, py->Frame_GetLineNumber(frame));
	} else if (what == PY_TRACE_CALL && py->off_f_trace_lines > 0) {
		/* A new frame we will never measure: no line events for it. */
		*((char *)frame + py->off_f_trace_lines) = 0;
	}
	return 0;
}

static int event_of(PyObject *s)
{
	static const char *const names[] = { "call", "exception", "line", "return" };
	const char *e = py->Unicode_AsUTF8AndSize(s, NULL);

	for (int i = 0; e && i < 4; i++)
		if (!strcmp(e, names[i]))
			return i;
	py->Err_Clear();
	return -1;
}

/*
 * `tracer` called as a Python trace function (frame, event, arg): through
 * CPython's trampoline after the program restored it with sys.settrace, or
 * through a frame's f_trace.  Returns None, so f_trace stays as it is.
 */
static PyObject *on_tracer_call(PyObject *self, PyObject *args)
{
	PyObject *frame;
	int what;

	(void)self;
	if (py->Tuple_Size(args) < 3 || !(frame = py->Tuple_GetItem(args, 0)) ||
	    ((void **)frame)[1] != py->FrameType)	/* Py_TYPE */
		goto out;
	what = event_of(py->Tuple_GetItem(args, 1));
	if (what == PY_TRACE_CALL) {	/* only the trampoline sends "call" */
		py->Eval_SetTrace(active ? on_trace : NULL, active ? tracer : NULL);
		if (active)
			note_ours();
	}
	if (active && what >= 0)
		on_trace(tracer, (PyFrameObject *)frame, what, NULL);
out:
	py->Err_Clear();
	py->IncRef(py->None);
	return py->None;
}

/* METH_VARARGS: every version has it (2.7 has no METH_FASTCALL), and the
 * trampoline calls it once per restore. */
static struct py_methoddef tracer_def = {
	"covinject_tracer", (void *)on_tracer_call, PY_METH_VARARGS, NULL
};

/* ---- layouts found at run time ----------------------------------------- */

/*
 * c_tracefunc and c_traceobj in PyThreadState: set ours on our own thread
 * state, find the two words, clear, check they are empty again.  And
 * native_thread_id (3.8+), for status: the word holding our thread's id,
 * checked against the main thread's, whose id is the pid.
 */
static int find_tstate_slots(void)
{
	PyThreadState *me = py->ThreadState_Get(), *ts, *main = NULL;
	void *tid = (void *)(long)syscall(SYS_gettid);

	py->Eval_SetTrace(on_trace, tracer);
	off_func = cov_find_word(me, 64, (void *)on_trace);
	off_obj = cov_find_word(me, 64, tracer);
	py->Eval_SetTrace(NULL, NULL);
	if (off_func < 0 || off_obj < 0 || SLOT(me, off_func, void *) ||
	    SLOT(me, off_obj, void *))
		return -1;
	for (ts = py->InterpreterState_ThreadHead(py->InterpreterState_Main()); ts;
	     ts = py->ThreadState_Next(ts))
		main = ts;	/* the first one made is last in the list */
	off_tid = cov_find_word(me, 64, tid);
	if (off_tid >= 0 && (!main || main == me ||
			     SLOT(main, off_tid, long) != (long)getpid()))
		off_tid = -1;	/* not sure: report no thread ids */
	return 0;
}

/*
 * f_trace of PyFrameObject: set it through the attribute on a frame we are
 * given, find the word, put the old value back.  Once, at the first frame
 * we measure; on failure frames are left alone (-1).
 */
static void find_f_trace(PyFrameObject *frame)
{
	PyObject *t, *v, *tb, *old;
	Py_ssize_t at = -1;

	off_f_trace = -1;
	py->Err_Fetch(&t, &v, &tb);
	old = py->Object_GetAttrString((PyObject *)frame, "f_trace");
	if (old && py->Object_SetAttrString((PyObject *)frame, "f_trace", tracer) == 0) {
		at = cov_find_word(frame, 12, tracer);
		py->Object_SetAttrString((PyObject *)frame, "f_trace", old);
		if (at > 0 && SLOT(frame, at, PyObject *) != (old == py->None ? NULL : old))
			at = -1;
	}
	if (old)
		py->DecRef(old);
	py->Err_Clear();
	py->Err_Restore(t, v, tb);
	off_f_trace = at > 0 ? at : -1;
}

/* ---- the sweep --------------------------------------------------------- */

/* Every thread state of every interpreter: on 3.9-3.11 sub-interpreters
 * (mod_wsgi's application groups) share the GIL and the allocator, and
 * their threads get the tracer like the main one's. */
struct walk {
	PyInterpreterState *in;	/* the next interpreter */
	PyThreadState *ts;
};

static PyThreadState *walk_next(struct walk *w)
{
	if (w->ts)
		w->ts = py->ThreadState_Next(w->ts);
	while (!w->ts && w->in) {
		w->ts = py->InterpreterState_ThreadHead(w->in);
		w->in = py->InterpreterState_Next(w->in);
	}
	return w->ts;
}

#define EACH_TSTATE(w, ts) \
	for (struct walk w = { py->InterpreterState_Head(), NULL }; \
	     (ts = walk_next(&w)) != NULL;)

/* Is ts the main interpreter's (3.9+: on older versions, no)? */
static int in_main(PyThreadState *ts)
{
	return py->ThreadState_GetInterpreter &&
	       py->ThreadState_GetInterpreter(ts) == py->InterpreterState_Main();
}

/* A thread state the tracer is not for (skip_main). */
static int excluded(PyThreadState *ts)
{
	return skip_main && in_main(ts);
}

static struct seen *met(unsigned long long id)
{
	for (size_t i = 0; i < nseen; i++)
		if (seen[i].id == id)
			return &seen[i];
	return NULL;
}

static int grow_seen(size_t n);

/* The current thread has our tracer by its own doing (a new thread's
 * threading hook, a restore): known from now on, so that a removal
 * before the next sweep is not taken for a thread never met. */
static void note_ours(void)
{
	PyThreadState *ts = py->ThreadState_Get();
	unsigned long long id = py->ThreadState_GetID(ts);
	struct seen *s;

	if (met(id) || grow_seen(nseen + 1))
		return;
	s = &seen[nseen++];
	s->id = id;
	s->kind = T_OURS;
	s->since_ns = now_ns();
	s->tid = off_tid >= 0 ? (int32_t)SLOT(ts, off_tid, long) : 0;
}

static PyObject *thread_hook_now(void)
{
	PyObject *name = py->Unicode_FromString("threading"), *mod, *hook = NULL;

	mod = name ? py->Import_GetModule(name) : NULL;
	if (mod && mod != py->None)
		hook = py->Object_GetAttrString(mod, "_trace_hook");
	if (mod)
		py->DecRef(mod);
	if (name)
		py->DecRef(name);
	py->Err_Clear();
	return hook;
}

/* The threading hook we set is gone (threading.settrace(None) or another
 * function): threads started since get nothing from the sweep either. */
static int hook_lost(int64_t now)
{
	PyObject *hook;

	if (!hook_set)
		return 0;
	hook = thread_hook_now();
	if (hook == tracer)
		hook_lost_ns = 0;
	else if (!hook_lost_ns)
		hook_lost_ns = now;
	if (hook)
		py->DecRef(hook);
	return hook_lost_ns != 0;
}

/* The kind of a thread state now, giving the tracer to one never met. */
static enum kind classify(PyThreadState *ts, const struct seen *prev, int may_give,
			  uint32_t *given)
{
	void *func = SLOT(ts, off_func, void *), *obj = SLOT(ts, off_obj, void *);

	if (func == (void *)on_trace || obj == tracer)
		return T_OURS;	/* ours, or restored and waiting for a call */
	if (!prev && !func && may_give) {
		if (py->Eval_SetTraceTs(ts, on_trace, tracer) == 0) {
			(*given)++;
			return T_OURS;
		}
		py->Err_Clear();
	}
	if (!func)
		return T_REMOVED;
	return !prev || prev->kind == T_FOREIGN ? T_FOREIGN : T_REPLACED;
}

static void count(struct cov_lost *l, const struct seen *s)
{
	if (!l->n || s->since_ns < l->since_ns)
		l->since_ns = s->since_ns;
	if (l->ntids < COV_LOST_TIDS)
		l->tids[l->ntids++] = s->tid;
	l->n++;
}

static void report(struct cov_sweep *out)
{
	struct cov_lost *lost[] = { NULL, &out->removed, &out->replaced, &out->foreign };

	for (size_t i = 0; i < nseen; i++) {
		if (seen[i].kind == T_OURS)
			out->ours++;
		else
			count(lost[seen[i].kind], &seen[i]);
	}
	out->live = (uint32_t)nseen;
	out->hook_lost_ns = hook_lost_ns;
}

static int grow_seen(size_t n)
{
	struct seen *a, *b;

	if (n <= seen_cap)
		return 0;
	a = realloc(seen, n * 2 * sizeof(*a));
	if (!a)
		return -1;
	seen = a;
	b = realloc(next_seen, n * 2 * sizeof(*b));
	if (!b)
		return -1;
	next_seen = b;
	seen_cap = n * 2;
	return 0;
}

void cov_trace_sweep(struct cov_sweep *out)
{
	PyThreadState *me = py->ThreadState_Get(), *ts;
	int64_t now = now_ns();
	int may_give = !hook_lost(now);
	size_t n = 0;
	struct seen *s;

	memset(out, 0, sizeof(*out));
	EACH_TSTATE(w, ts)
		n++;
	if (!active || off_func < 0 || grow_seen(n))
		return;
	n = 0;
	EACH_TSTATE(w, ts) {
		const struct seen *prev;

		if (ts == me || n >= seen_cap || excluded(ts))
			continue;	/* (a thread made since the count: next time) */
		s = &next_seen[n++];
		s->id = py->ThreadState_GetID(ts);
		prev = met(s->id);
		s->kind = classify(ts, prev, may_give, &out->given);
		s->since_ns = prev && prev->kind == s->kind ? prev->since_ns : now;
		s->tid = off_tid >= 0 ? (int32_t)SLOT(ts, off_tid, long) : 0;
	}
	s = seen;
	seen = next_seen;
	next_seen = s;
	nseen = n;
	report(out);
}

/*
 * A thread state PyGILState_Ensure has just made (got.c: C code bringing a
 * thread into Python, as mod_wsgi does for each request) gets the tracer
 * before its first frame, as the sweep would give it a second later, and on
 * the same terms: not once the program replaced threading's hook.
 */
void cov_trace_new_thread(void)
{
	PyThreadState *ts;

	if (!active || off_func < 0 || hook_lost_ns || !(ts = py->ThreadState_Get()) ||
	    SLOT(ts, off_func, void *) || excluded(ts))
		return;
	if (py->Eval_SetTraceTs(ts, on_trace, tracer))
		py->Err_Clear();
}

/*
 * The current thread state was just made current by PyEval_AcquireThread
 * (got.c): mod_wsgi enters a sub-interpreter that way, on a thread state
 * of its own making (PyThreadState_New) kept per request thread.  One the
 * sweep never met gets the tracer now, before its first frame, on the
 * sweep's terms; one it met keeps what it has (the program may have
 * removed ours).
 */
void cov_trace_acquired(void)
{
	PyThreadState *ts;

	if (!active || off_func < 0 || hook_lost_ns || !(ts = py->ThreadState_Get()) ||
	    SLOT(ts, off_func, void *) || met(py->ThreadState_GetID(ts)) || excluded(ts))
		return;
	if (py->Eval_SetTraceTs(ts, on_trace, tracer))
		py->Err_Clear();
	else
		note_ours();
}

/* ---- start and stop ---------------------------------------------------- */

/* threading.settrace(tracer), only if the program imported threading
 * itself: importing it from a foreign thread first confuses its
 * bookkeeping of the main thread. */
static void set_thread_hook(void)
{
	PyObject *name = py->Unicode_FromString("threading"), *threading, *r;

	threading = name ? py->Import_GetModule(name) : NULL;
	if (threading && threading != py->None) {
		prev_thread_hook = py->Object_GetAttrString(threading, "_trace_hook");
		r = py->Object_CallMethod(threading, "settrace", "O", tracer);
		if (r) {
			hook_set = 1;
			py->DecRef(r);
		}
	}
	if (threading)
		py->DecRef(threading);
	if (name)
		py->DecRef(name);
	py->Err_Clear();
}

int cov_trace_start(struct pyapi *api, int main_interp, struct cov_collect_info *info,
		    char *err, size_t len)
{
	struct cov_sweep first;

	py = api;
	skip_main = !main_interp;
	if (!tracer && !(tracer = py->CFunction_NewEx(&tracer_def, NULL, NULL))) {
		py->Err_Clear();
		snprintf(err, len, "cannot make the trace function object");
		return -1;
	}
	if (off_func < 0 && (find_tstate_slots() || cov_oldapi_probe(tracer))) {
		off_func = -1;
		snprintf(err, len, "thread state layout not recognised");
		return -1;
	}
	nseen = 0;
	hook_lost_ns = 0;
	hook_set = 0;
	active = 1;
	cov_trace_sweep(&first);
	info->threads = first.given;
	info->skipped = first.foreign.n;
	if (main_interp)
		set_thread_hook();
	return 0;
}

/* f_trace = tracer back to empty on every frame of ts's stack. */
static void unclaim_frames(PyThreadState *ts)
{
	PyFrameObject *f = py->ThreadState_GetFrame(ts), *back;

	for (; f; f = back) {
		PyObject **slot = off_f_trace > 0 ? &SLOT(f, off_f_trace, PyObject *) : NULL;

		if (slot && *slot == tracer) {
			*slot = NULL;
			py->DecRef(tracer);
		}
		back = py->Frame_GetBack(f);
		py->DecRef((PyObject *)f);
	}
}

/* Our tracer off every thread (main_only: of the main interpreter) that
 * has it, or has it restored and waiting, and f_trace off their frames. */
static void untrace(int main_only)
{
	PyThreadState *ts;

	EACH_TSTATE(w, ts) {
		if (main_only && !in_main(ts))
			continue;
		if ((SLOT(ts, off_func, void *) == (void *)on_trace ||
		     SLOT(ts, off_obj, void *) == tracer) &&
		    py->Eval_SetTraceTs(ts, NULL, NULL))
			py->Err_Clear();
		unclaim_frames(ts);
	}
	py->Err_Clear();
}

static void unhook_threads(void);

/* --collector probe, once no frame from start needs it: the main
 * interpreter's threads lose the tracer, sub-interpreters' keep it. */
void cov_trace_release_main(void)
{
	if (!active || skip_main)
		return;
	untrace(1);
	unhook_threads();
	skip_main = 1;	/* the next sweep forgets the main interpreter's */
}

/*
 * Our tracer off every thread, and threading's hook back to what it was
 * unless the program replaced ours since.  A suspended generator's frame
 * keeps its f_trace; `tracer` does nothing once stopped, and a "call"
 * through it clears the trace function, as restoring None would have.
 */
void cov_trace_stop(void)
{
	if (!active)
		return;
	active = 0;
	untrace(0);
	unhook_threads();
	nseen = 0;
}

/* threading's hook back to what it was unless the program replaced ours. */
static void unhook_threads(void)
{
	PyObject *hook;

	hook = hook_set ? thread_hook_now() : NULL;
	if (hook == tracer) {
		PyObject *name = py->Unicode_FromString("threading");
		PyObject *mod = name ? py->Import_GetModule(name) : NULL;

		if (mod && mod != py->None)
			py->Object_SetAttrString(mod, "_trace_hook",
						 prev_thread_hook ? prev_thread_hook : py->None);
		if (mod)
			py->DecRef(mod);
		if (name)
			py->DecRef(name);
	}
	if (hook)
		py->DecRef(hook);
	if (prev_thread_hook)
		py->DecRef(prev_thread_hook);
	prev_thread_hook = NULL;
	hook_set = 0;
	hook_lost_ns = 0;
	py->Err_Clear();
}
