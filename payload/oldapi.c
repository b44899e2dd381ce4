/*
 * oldapi.c - stand-ins for the C-API functions that CPython 2.7 and 3.6-3.8
 * lack, made of what they have.  cov_pyapi_load installs each one only where
 * dlsym found nothing, so 3.9 and later never run this file:
 *
 *   PyFrame_GetCode, PyFrame_GetBack (3.9)   f_code, f_back: the frame
 *       type's own tp_members (Objects/frameobject.c, frame_memberlist:
 *       T_OBJECT members up to 3.10)
 *   PyThreadState_GetFrame (3.9)             tstate->frame, probed on
 *       sys._current_frames() (the frame of every other thread)
 *   PyThreadState_GetID (3.9)                the thread state's address
 *   _PyEval_SetTrace(tstate, ...) (3.9)      PyEval_SetTrace on the
 *       payload thread's own state, then the result moved (see set_trace)
 *   PyInterpreterState_Main (3.7)            the last of the list
 *   PyImport_GetModule (3.7)                 sys.modules, PyDict_GetItem
 *   PyUnicode_FromString, PyUnicode_AsUTF8AndSize, PyBytes_AsString,
 *   PyBytes_Size, Py_CompileStringExFlags (2.7)   PyString_FromString,
 *       PyString_AsStringAndSize (of a str), PyString_AsString,
 *       PyString_Size, Py_CompileStringFlags: 2.7's names are str
 *   PyGILState_Check (2.7)                   _PyThreadState_Current is
 *       this thread's state
 *
 * and one thing 3.6 lacks that is not a function: a GIL before the
 * program's second thread (cov_oldapi_make_gil).  No layout is compiled
 * in.  Everything else runs with the GIL held.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "oldapi.h"

static struct pyapi *py;
static Py_ssize_t off_f_code = -1, off_f_back = -1;
/* PyThreadState: frame, c_tracefunc, c_traceobj, c_profilefunc (bytes),
 * use_tracing (an int); -1 until probed (cov_oldapi_probe). */
static Py_ssize_t off_frame = -1, off_func = -1, off_obj = -1, off_prof = -1;
static Py_ssize_t off_use = -1;

#define SLOT(base, off, type) (*(type *)((char *)(base) + (off)))
#define TSTATE_WORDS 64

static PyObject *frame_get_code(PyFrameObject *f)
{
	PyObject *code = SLOT(f, off_f_code, PyObject *);

	py->IncRef(code);
	return code;
}

static PyFrameObject *frame_get_back(PyFrameObject *f)
{
	PyFrameObject *back = SLOT(f, off_f_back, PyFrameObject *);

	if (back)
		py->IncRef((PyObject *)back);
	return back;
}

/*
 * An address, not an id that is never reused: a thread state freed and
 * made again at the same address between two sweeps is taken for the one
 * met before.  Threads started by threading, and those C code brings in
 * through PyGILState_Ensure, get the tracer on their own (trace.c), so
 * only a bare _thread.start_new_thread can be missed that way.
 */
static unsigned long long thread_state_id(PyThreadState *ts)
{
	return (unsigned long long)(uintptr_t)ts;
}

/* tstate->frame: the word of some thread state that holds a frame of
 * sys._current_frames(), the same word in each; -1 if none runs one. */
static void find_frame_slot(void)
{
	PyObject *fn = py->Sys_GetObject("_current_frames"), *frames, *vals;
	PyThreadState *ts;
	Py_ssize_t at = -1, w;

	frames = fn ? py->Object_CallFunctionObjArgs(fn, NULL) : NULL;
	vals = frames ? py->Dict_Values(frames) : NULL;
	for (Py_ssize_t i = 0; vals && i < py->List_Size(vals); i++) {
		PyObject *f = py->List_GetItem(vals, i);

		for (ts = py->InterpreterState_ThreadHead(py->InterpreterState_Main());
		     ts; ts = py->ThreadState_Next(ts)) {
			if ((w = cov_find_word(ts, TSTATE_WORDS, f)) < 0)
				continue;
			if (at >= 0 && w != at)
				at = -2;	/* two answers: trust neither */
			else if (at != -2)
				at = w;
		}
	}
	if (vals)
		py->DecRef(vals);
	if (frames)
		py->DecRef(frames);
	py->Err_Clear();
	off_frame = at >= 0 ? at : -1;
}

static PyFrameObject *thread_state_frame(PyThreadState *ts)
{
	PyFrameObject *f;

	if (off_frame < 0)
		find_frame_slot();	/* again: maybe a thread runs Python now */
	if (off_frame < 0 || !(f = SLOT(ts, off_frame, PyFrameObject *)))
		return NULL;
	py->IncRef((PyObject *)f);
	return f;
}

/* from's trace function, with its reference, to to; from's emptied as
 * PyEval_SetTrace(NULL, NULL) empties it (Python/ceval.c), minus the
 * tracing_possible count and the reference, which travel with it. */
static void move_trace(PyThreadState *from, PyThreadState *to)
{
	SLOT(to, off_func, void *) = SLOT(from, off_func, void *);
	SLOT(to, off_obj, PyObject *) = SLOT(from, off_obj, PyObject *);
	SLOT(to, off_use, int) = 1;
	SLOT(from, off_func, void *) = NULL;
	SLOT(from, off_obj, PyObject *) = NULL;
	SLOT(from, off_use, int) = SLOT(from, off_prof, void *) != NULL;
}

/*
 * _PyEval_SetTrace(ts, func, obj) for another thread's state, which is
 * waiting for the GIL we hold.  PyEval_SetTrace acts on the current
 * thread only and keeps the eval loop's count of traced threads
 * (tracing_possible: _PyRuntime.ceval in 3.7 and 3.8, a static of
 * Python/ceval.c in 3.6, which no symbol names), so the count is kept by
 * calling it on the payload thread's own state, which never traces
 * anything, and the trace function is moved between the states:
 *
 *   set:    PyEval_SetTrace(func, obj) here (count + 1), then moved to ts
 *   remove: ts's moved here, then PyEval_SetTrace(NULL, NULL) (count - 1)
 *
 * No thread state is swapped in, so nothing (an audit hook, a destructor)
 * ever runs in ts's name.  0, or -1 (layout unknown, or the interpreter
 * refused: a sys.settrace audit hook).
 */
static int set_trace(PyThreadState *ts, Py_tracefunc func, PyObject *obj)
{
	PyThreadState *me = py->ThreadState_Get();

	if (ts == me) {
		py->Eval_SetTrace(func, obj);
		return 0;
	}
	if (off_use < 0 || SLOT(me, off_func, void *))
		return -1;
	if (SLOT(ts, off_func, void *)) {
		move_trace(ts, me);
		py->Eval_SetTrace(NULL, NULL);
	}
	if (!func)
		return 0;
	py->Eval_SetTrace(func, obj);
	if (SLOT(me, off_func, void *) != (void *)func)
		return -1;
	move_trace(me, ts);
	return 0;
}

static int probe_trace(PyObject *obj, PyFrameObject *f, int what, PyObject *arg)
{
	(void)obj;
	(void)f;
	(void)what;
	(void)arg;
	return 0;
}

/* The one int of 0 in before and 1 in during, outside the words at a and
 * b; its byte offset, or -1. */
static Py_ssize_t flipped_int(const int *before, const int *during, Py_ssize_t a,
			      Py_ssize_t b)
{
	Py_ssize_t at = -1;

	for (int i = 0; i < TSTATE_WORDS * 2; i++) {
		Py_ssize_t off = i * (Py_ssize_t)sizeof(int);

		if (off / 8 == a / 8 || off / 8 == b / 8 || before[i] != 0 || during[i] != 1)
			continue;
		if (at >= 0)
			return -1;
		at = off;
	}
	return at;
}

/*
 * c_tracefunc, c_traceobj, c_profilefunc and use_tracing of PyThreadState,
 * found on our own state: the words that take what PyEval_SetTrace and
 * PyEval_SetProfile are given, and the int that goes from 0 to 1 with
 * them.  unique: an object found nowhere else (the tracer).
 */
int cov_oldapi_probe(PyObject *unique)
{
	PyThreadState *me = py->ThreadState_Get();
	int before[TSTATE_WORDS * 2], during[TSTATE_WORDS * 2];

	if (py->Eval_SetTraceTs != set_trace || off_use >= 0)
		return 0;
	memcpy(before, me, sizeof(before));
	py->Eval_SetTrace(probe_trace, unique);
	memcpy(during, me, sizeof(during));
	off_func = cov_find_word(me, TSTATE_WORDS, (void *)probe_trace);
	off_obj = cov_find_word(me, TSTATE_WORDS, unique);
	py->Eval_SetTrace(NULL, NULL);
	py->Eval_SetProfile(probe_trace, unique);
	off_prof = cov_find_word(me, TSTATE_WORDS, (void *)probe_trace);
	py->Eval_SetProfile(NULL, NULL);
	if (off_func < 0 || off_obj < 0 || off_prof < 0 || off_prof == off_func)
		return -1;
	off_use = flipped_int(before, during, off_func, off_obj);
	find_frame_slot();
	return off_use < 0 ? -1 : 0;
}

static PyInterpreterState *interpreter_main(void)
{
	PyInterpreterState *i = py->InterpreterState_Head(), *next;

	/* new interpreters are put at the head (Python/pystate.c) */
	while (i && (next = py->InterpreterState_Next(i)))
		i = next;
	return i;
}

static PyObject *import_get_module(PyObject *name)
{
	PyObject *modules = py->Import_GetModuleDict(), *m;

	m = modules ? py->Dict_GetItem(modules, name) : NULL;	/* borrowed */
	if (m)
		py->IncRef(m);
	return m;
}

/* 2.7: PyUnicode_AsUTF8AndSize of a str (bytes: names, co_filename); a
 * unicode object gives NULL, as for an error. */
static const char *string_as_utf8(PyObject *o, Py_ssize_t *n)
{
	char *s;
	Py_ssize_t len;

	if (!o || ((void **)o)[1] != py->StringType ||
	    py->String_AsStringAndSize(o, &s, &len))
		return NULL;
	if (n)
		*n = len;
	return s;
}

/* 2.7: Py_CompileStringExFlags without the optimisation level. */
static PyObject *compile_string_ex(const char *src, const char *file, int start,
				   void *flags, int optimize)
{
	(void)optimize;
	return py->CompileStringFlags(src, file, start, flags);
}

/* 2.7: PyGILState_Check (3.4), from the current thread state, which the
 * GIL's holder sets (a relaxed read: it is ours only if we set it). */
static int gilstate_check(void)
{
	PyThreadState *cur = __atomic_load_n(py->ThreadStateCurrent, __ATOMIC_RELAXED);

	return cur && cur == py->GILState_GetThisThreadState();
}

#define FILL(field, fn) do { if (!api->field) api->field = fn; } while (0)

int cov_oldapi_fill(struct pyapi *api)
{
	py = api;
	if (!api->Frame_GetCode || !api->Frame_GetBack) {
		off_f_code = cov_member_offset(api->FrameType, "frame", "f_code");
		off_f_back = cov_member_offset(api->FrameType, "frame", "f_back");
		if (off_f_code <= 0 || off_f_back <= 0)
			return -1;
	}
	FILL(Frame_GetCode, frame_get_code);
	FILL(Frame_GetBack, frame_get_back);
	FILL(ThreadState_GetFrame, thread_state_frame);
	FILL(ThreadState_GetID, thread_state_id);
	FILL(Eval_SetTraceTs, set_trace);
	FILL(InterpreterState_Main, interpreter_main);
	FILL(Import_GetModule, import_get_module);
	FILL(Unicode_FromString, api->String_FromString);
	if (api->String_AsStringAndSize && api->StringType)
		FILL(Unicode_AsUTF8AndSize, string_as_utf8);
	FILL(Bytes_AsString, api->String_AsString);
	FILL(Bytes_Size, api->String_Size);
	if (api->CompileStringFlags)
		FILL(CompileStringExFlags, compile_string_ex);
	if (api->ThreadStateCurrent)
		FILL(GILState_Check, gilstate_check);
	return 0;
}

const char *cov_oldapi_missing(const struct pyapi *api)
{
	if (!api->Unicode_FromString)
		return "PyUnicode_FromString";
	if (!api->Unicode_AsUTF8AndSize)
		return "PyUnicode_AsUTF8AndSize";
	if (!api->Bytes_AsString)
		return "PyBytes_AsString";
	if (!api->Bytes_Size)
		return "PyBytes_Size";
	if (!api->CompileStringExFlags)
		return "Py_CompileStringExFlags";
	if (!api->GILState_Check)
		return "PyGILState_Check";
	return NULL;
}

/*
 * Where PyEval_InitThreads must not run in the thread it interrupted: the
 * functions that test for the GIL and then act on the answer (a GIL made
 * in between would be dropped without being held, or the interpreter
 * taken without it), and those of the pending calls' lock, made on first
 * use.  dladdr names only exported functions.  Of the static ones, only
 * create_gil tests and acts while there is no GIL, inside
 * PyEval_InitThreads (the program starting its first thread): making the
 * GIL there too is made over by the rest of create_gil, which leaves it
 * free for PyEval_InitThreads to take, as it would have been.
 */
static const char *const gil_testers[] = {
	"PyEval_SaveThread", "PyEval_RestoreThread", "PyEval_AcquireThread",
	"PyEval_ReleaseThread", "PyEval_AcquireLock", "PyEval_ReleaseLock",
	"PyEval_InitThreads", "PyEval_ReInitThreads", "PyThreadState_Swap",
	"PyGILState_Ensure", "PyGILState_Release", "Py_AddPendingCall",
	"Py_MakePendingCalls", "_PyEval_FiniThreads",
};

/* May the thread interrupted at ip (0: parked in a system call) have the
 * GIL made under it?  If not, why. */
static int may_make_gil_at(uintptr_t ip, char *why, size_t len)
{
	Dl_info info;

	if (!ip)
		return 1;
	if (!dladdr((void *)ip, &info) || !info.dli_sname)
		return 1;	/* a static function: see above */
	for (size_t i = 0; i < sizeof(gil_testers) / sizeof(gil_testers[0]); i++)
		if (!strcmp(info.dli_sname, gil_testers[i])) {
			snprintf(why, len, "it was caught running in %s", info.dli_sname);
			return 0;
		}
	return 1;
}

/*
 * 2.7 and 3.6 create their GIL only when a second thread starts
 * (_thread.start_new_thread calls PyEval_InitThreads); until then its one
 * thread runs with no lock at all, and PyGILState_Ensure in ours would
 * not wait for it (PyEval_RestoreThread takes the GIL only if it exists).
 * So the borrowed thread makes it here, in cov_start, as starting a
 * thread would, if it is that one thread and was parked in a system call
 * or caught running outside the functions that test for the GIL
 * (gil_testers), with the interpreter either released (inside
 * Py_BEGIN_ALLOW_THREADS) or held:
 *
 *   released: its state in, PyEval_InitThreads (makes the GIL and takes
 *             it for that state), PyEval_SaveThread (gives it back): as
 *             before, plus a free GIL it will take on its way out
 *   held:     PyEval_InitThreads only: it holds the GIL it was running under
 *
 * PyEval_InitThreads also records this thread as the main one, which
 * pending calls (Python's signal handlers) run in: the one thread that
 * runs Python is it.  0 (made, or not needed), or -1 (needed, and not
 * this thread's to make).  No GIL: there is none.
 */
int cov_oldapi_make_gil(uintptr_t running_ip, char *why, size_t len)
{
	PyThreadState *mine, *cur, *head;

	if (!py || !py->Eval_ThreadsInitialized || py->Eval_ThreadsInitialized() ||
	    !py->IsInitialized())
		return 0;	/* 3.7+ made it at startup; a late start waits */
	if (!may_make_gil_at(running_ip, why, len))
		return -1;
	head = py->InterpreterState_ThreadHead(py->InterpreterState_Main());
	if (!py->Eval_InitThreads || !(mine = py->GILState_GetThisThreadState()) ||
	    head != mine || py->ThreadState_Next(head)) {
		/* without a GIL, another thread's state is not ours to judge */
		snprintf(why, len, "it is not the one thread that runs Python");
		return -1;
	}
	cur = py->ThreadState_Swap(NULL);
	if (cur && cur != mine) {
		py->ThreadState_Swap(cur);
		snprintf(why, len, "another thread state was current in it");
		return -1;
	}
	py->ThreadState_Swap(mine);
	py->Eval_InitThreads();
	if (!cur)
		py->Eval_SaveThread();
	return 0;
}
