/*
 * interps.c - the sub-interpreters of the process (mod_wsgi's application
 * groups, interpreters.create()): which of them covinject can measure, and
 * a visit into one from the payload thread.
 *
 * The collectors keep one store, keyed by the interpreters' own str
 * objects, under one GIL.  So an interpreter is measured only if it shares
 * the main interpreter's object allocator, which on 3.12+ also means that
 * it shares the GIL: an interpreter with a GIL of its own must have its
 * own allocator too (PyInterpreterConfig, use_main_obmalloc, in CPython's
 * documentation).  On 3.9-3.11 every interpreter shares both.  How to tell,
 * found at run time:
 *
 *   3.12   _PyInterpreterState_HasFeature(interp, Py_RTFLAGS_USE_MAIN_OBMALLOC)
 *   3.13+  _PyInterpreterConfig_InitFromState(&config, interp): its first
 *          int is use_main_obmalloc (the flag's bit, not 1), its seventh
 *          gil (1 shared, 2 own).  Checked on the main interpreter first,
 *          which must read as "main allocator, own GIL", else no
 *          sub-interpreter is taken for shared.
 *
 * A visit (3.12+, where sys.monitoring is per interpreter) makes a thread
 * state in the interpreter for our thread, swaps to it, runs a function,
 * clears it, swaps back and deletes it: the sequence CPython's own
 * _xxsubinterpreters / _interpreters modules use to run code in another
 * interpreter.  The thread state lives only for the visit, since
 * Py_EndInterpreter refuses (fatally) to end an interpreter that has any
 * other.  From 3.13 each swap releases the GIL and takes it again, so
 * other threads may run in between (up to a switch interval, 5 ms, each
 * time), and a program that ends that very interpreter then would stop
 * with a fatal error.  Visits are rare for that reason: an interpreter new
 * to us, a reset, a stop.  (_PyEval_AddPendingCall(interp, ...), exported
 * since 3.12, would run the same function in one of the interpreter's own
 * threads with no such window, but only once that interpreter runs Python
 * again, and which thread it reaches differs between versions: not used.)
 */
#include "interps.h"

#define USE_MAIN_OBMALLOC	(1UL << 5)	/* Py_RTFLAGS_USE_MAIN_OBMALLOC */
#define CONFIG_INTS		32		/* PyInterpreterConfig: 7, and room */
#define GIL_SHARED		1		/* PyInterpreterConfig_SHARED_GIL */
#define GIL_OWN			2

/* 0 with *alloc (shares the main allocator) and *gil set, or -1. */
static int read_config(struct pyapi *py, PyInterpreterState *in, int *alloc, int *gil)
{
	int cfg[CONFIG_INTS] = { 0 };

	if (py->InterpConfig_FromState(cfg, in)) {
		py->Err_Clear();
		return -1;
	}
	*alloc = cfg[0] != 0;
	*gil = cfg[6];
	return 0;
}

int cov_interp_shared(struct pyapi *py, PyInterpreterState *in)
{
	static int config_ok = -1;	/* 3.13+: the main one reads right */
	PyInterpreterState *main = py->InterpreterState_Main();
	int alloc, gil;

	if (in == main || py->hex < 0x030c0000)
		return 1;
	if (py->Interp_HasFeature)
		return py->Interp_HasFeature(in, USE_MAIN_OBMALLOC) != 0;
	if (!py->InterpConfig_FromState)
		return 0;
	if (config_ok < 0)
		config_ok = read_config(py, main, &alloc, &gil) == 0 && alloc &&
			    gil == GIL_OWN;
	return config_ok && read_config(py, in, &alloc, &gil) == 0 && alloc &&
	       gil == GIL_SHARED;
}

int cov_interp_visit(struct pyapi *py, PyInterpreterState *in, void (*fn)(void *),
		     void *arg)
{
	PyThreadState *me = py->ThreadState_Get(), *ts = py->ThreadState_New(in);

	if (!ts) {
		py->Err_Clear();
		return -1;
	}
	py->ThreadState_Swap(ts);
	fn(arg);
	py->Err_Clear();
	py->ThreadState_Clear(ts);
	py->ThreadState_Swap(me);
	py->ThreadState_Delete(ts);
	return 0;
}
