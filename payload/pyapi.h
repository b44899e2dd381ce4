/*
 * pyapi.h - the parts of the CPython C-API (and of SQLite) the payload uses,
 * declared here with our own minimal types and resolved at run time by
 * payload/pyapi.c, the only file that calls dlsym.  No Python.h: one build
 * serves every interpreter of payload/versions.h.
 *
 * Only functions and layouts that are stable for the whole range are used.
 * Where a struct offset is needed (co_filename in a code object,
 * f_trace_lines in a frame), it is read at run time from the type's own
 * tp_members table, never compiled in.
 */
#ifndef COVINJECT_PYAPI_H
#define COVINJECT_PYAPI_H

#include <stddef.h>
#include <sys/types.h>

typedef struct _object PyObject;
typedef struct _ts PyThreadState;
typedef struct _is PyInterpreterState;
typedef struct _frame PyFrameObject;
typedef ssize_t Py_ssize_t;
typedef int (*Py_tracefunc)(PyObject *, PyFrameObject *, int, PyObject *);

/* Include/methodobject.h; unchanged 2.7-3.15. */
struct py_methoddef {
	const char *name;
	void *meth;
	int flags;
	const char *doc;
};
#define PY_METH_VARARGS	0x0001
#define PY_METH_NOARGS	0x0004
#define PY_METH_O	0x0008
#define PY_METH_FASTCALL	0x0080	/* 3.7+ (sys.monitoring's callbacks: 3.12+) */

/* Include/compile.h: Py_file_input; Include/cpython/code.h: co_flags. */
#define PY_FILE_INPUT	257
#define PY_CO_OPTIMIZED	0x0001
#define PY_CO_NEWLOCALS	0x0002

/* Include/cpython/pystate.h trace events. */
#define PY_TRACE_CALL	0
#define PY_TRACE_EXCEPTION	1
#define PY_TRACE_LINE	2
#define PY_TRACE_RETURN	3

struct pyapi {
	int hex;				/* PY_VERSION_HEX */
	int (*IsInitialized)(void);
	const char *(*GetVersion)(void);
	int (*GILState_Ensure)(void);
	void (*GILState_Release)(int);
	PyThreadState *(*ThreadState_Get)(void);
	PyInterpreterState *(*InterpreterState_Main)(void);
	PyThreadState *(*InterpreterState_ThreadHead)(PyInterpreterState *);
	int (*GILState_Check)(void);
	PyThreadState *(*GILState_GetThisThreadState)(void);
	PyInterpreterState *(*InterpreterState_Head)(void);
	PyInterpreterState *(*InterpreterState_Next)(PyInterpreterState *);
	PyThreadState *(*ThreadState_Next)(PyThreadState *);
	PyObject *(*Import_GetModule)(PyObject *name);
	PyObject *(*Import_ImportModule)(const char *);
	PyObject *(*Object_GetAttrString)(PyObject *, const char *);
	int (*Object_SetAttrString)(PyObject *, const char *, PyObject *);
	PyObject *(*Object_CallMethod)(PyObject *, const char *, const char *, ...);
	PyObject *(*Object_Str)(PyObject *);
	PyObject *(*Object_Call)(PyObject *, PyObject *, PyObject *);
	PyObject *(*Object_CallFunctionObjArgs)(PyObject *, ...);
	PyObject *(*Dict_New)(void);
	int (*Dict_SetItemString)(PyObject *, const char *, PyObject *);
	PyObject *(*Tuple_New)(Py_ssize_t);
	PyObject *(*Long_FromLong)(long);
	long (*Long_AsLong)(PyObject *);
	PyObject *(*Unicode_FromString)(const char *);
	const char *(*Unicode_AsUTF8AndSize)(PyObject *, Py_ssize_t *);
	PyObject *(*CFunction_NewEx)(struct py_methoddef *, PyObject *, PyObject *);
	void (*IncRef)(PyObject *);
	void (*DecRef)(PyObject *);
	PyObject *(*Err_Occurred)(void);
	void (*Err_Fetch)(PyObject **, PyObject **, PyObject **);
	void (*Err_Restore)(PyObject *, PyObject *, PyObject *);
	void (*Err_Clear)(void);
	/* modules.c: the import context and --source packages */
	PyThreadState *(*Eval_SaveThread)(void);
	void (*Eval_RestoreThread)(PyThreadState *);
	PyObject *(*Sys_GetObject)(const char *);		/* borrowed */
	PyObject *(*Dict_GetItemString)(PyObject *, const char *);	/* borrowed */
	PyObject *(*Dict_Values)(PyObject *);
	int (*Object_IsInstance)(PyObject *, PyObject *);
	PyObject *(*Object_GetIter)(PyObject *);
	PyObject *(*Iter_Next)(PyObject *);
	Py_ssize_t (*List_Size)(PyObject *);
	PyObject *(*List_GetItem)(PyObject *, Py_ssize_t);		/* borrowed */
	int (*List_Insert)(PyObject *, Py_ssize_t, PyObject *);
	int (*List_SetSlice)(PyObject *, Py_ssize_t, Py_ssize_t, PyObject *);
	Py_ssize_t (*Tuple_Size)(PyObject *);
	PyObject *(*Tuple_GetItem)(PyObject *, Py_ssize_t);		/* borrowed */
	PyObject *(*Build_Value)(const char *, ...);
	char *(*Bytes_AsString)(PyObject *);
	Py_ssize_t (*Bytes_Size)(PyObject *);
	PyObject *(*Marshal_ReadObjectFromString)(const char *, Py_ssize_t);
	long (*Import_GetMagicNumber)(void);
	PyObject *(*CompileStringExFlags)(const char *, const char *, int, void *, int);
	void *ExcWarning;		/* &PyExc_Warning */
	PyObject *(*Module_GetDict)(PyObject *);			/* borrowed */
	int (*Object_IsTrue)(PyObject *);
	void *ModuleType;
	PyObject *(*Frame_GetCode)(PyFrameObject *);
	int (*Frame_GetLineNumber)(PyFrameObject *);
	void (*Eval_SetTrace)(Py_tracefunc, PyObject *);
	void (*Eval_SetProfile)(Py_tracefunc, PyObject *);
	PyObject *(*Import_GetModuleDict)(void);			/* borrowed */
	PyObject *(*Dict_GetItem)(PyObject *, PyObject *);		/* borrowed */
	/* <= 3.11 only: set the trace function of another thread state
	 * (_PyEval_SetTrace, 3.9-3.11; before: oldapi.c). */
	int (*Eval_SetTraceTs)(PyThreadState *, Py_tracefunc, PyObject *);
	/* The sweep tells threads apart, stop walks their frames (3.9+;
	 * before: oldapi.c). */
	unsigned long long (*ThreadState_GetID)(PyThreadState *);
	PyFrameObject *(*ThreadState_GetFrame)(PyThreadState *);	/* new ref */
	PyFrameObject *(*Frame_GetBack)(PyFrameObject *);		/* new ref */
	/* Sub-interpreters (interps.c): a visit, and whether one shares the
	 * main interpreter's allocator (3.12: a feature flag; 3.13+: its
	 * config; 3.9-3.11: always). */
	PyThreadState *(*ThreadState_New)(PyInterpreterState *);
	PyThreadState *(*ThreadState_Swap)(PyThreadState *);
	/* 2.7 only (oldapi.c makes the 3.x functions of them) */
	PyObject *(*String_FromString)(const char *);
	int (*String_AsStringAndSize)(PyObject *, char **, Py_ssize_t *);
	char *(*String_AsString)(PyObject *);
	Py_ssize_t (*String_Size)(PyObject *);
	PyObject *(*CompileStringFlags)(const char *, const char *, int, void *);
	void *StringType;
	PyThreadState *const *ThreadStateCurrent;	/* the variable */
	int (*Eval_ThreadsInitialized)(void);	/* 3.6: 0 until a thread starts */
	void (*Eval_InitThreads)(void);
	void (*ThreadState_Clear)(PyThreadState *);
	void (*ThreadState_Delete)(PyThreadState *);
	long long (*InterpreterState_GetID)(PyInterpreterState *);
	void (*Eval_AcquireThread)(PyThreadState *);
	int (*Interp_HasFeature)(PyInterpreterState *, unsigned long);
	int (*InterpConfig_FromState)(void *, PyInterpreterState *);
	/* The probe collector (probes.c, 3.9-3.11) */
	PyObject *(*Bytes_FromStringAndSize)(const char *, Py_ssize_t);
	PyFrameObject *(*Eval_GetFrame)(void);			/* borrowed */
	int (*Code_Addr2Line)(PyObject *, int);
	PyObject *(*InstanceMethod_New)(PyObject *);
	PyInterpreterState *(*ThreadState_GetInterpreter)(PyThreadState *);	/* 3.9+ */
	void (*Object_GC_UnTrack)(void *);
	void *(*Interp_GetEvalFrameFunc)(PyInterpreterState *);	/* 3.9+ */
	void *EvalFrameDefault;		/* _PyEval_EvalFrameDefault */
	PyObject *None;
	void *CodeType, *FrameType;
	/* Offsets found at run time in the types' tp_members. */
	Py_ssize_t off_co_filename;
	Py_ssize_t off_f_trace_lines;
};

/* Resolve everything (what 3.6-3.8 lack: payload/oldapi.c); 0 or -1
 * with a message in err. */
int cov_pyapi_load(struct pyapi *py, char *err, size_t errlen);
/* Without the GIL, from the borrowed thread: has the interpreter a GIL
 * (PyEval_ThreadsInitialized; 1 where the function is gone)?  0 only on
 * 2.7 and 3.6 before their first thread. */
int cov_pyapi_threads_initialized(void);

/* The offset of member in the type's tp_members, or -1 if the type is not
 * named tp_name or has no such member. */
Py_ssize_t cov_member_offset(void *type, const char *tp_name, const char *member);
/* The byte offset of the only word equal to v among the n at base, or -1. */
Py_ssize_t cov_find_word(const void *base, int n, const void *v);

/* Py_TYPE(o)->tp_name */
const char *cov_type_name(PyObject *o);

/* SQLite's C interface, the subset the writer needs. */
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

struct sqlite_api {
	int (*open_v2)(const char *, sqlite3 **, int, const char *);
	int (*close)(sqlite3 *);
	int (*exec)(sqlite3 *, const char *, void *, void *, char **);
	int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
	int (*bind_int64)(sqlite3_stmt *, int, long long);
	int (*bind_text)(sqlite3_stmt *, int, const char *, int, void (*)(void *));
	int (*bind_blob)(sqlite3_stmt *, int, const void *, int, void (*)(void *));
	int (*step)(sqlite3_stmt *);
	int (*reset)(sqlite3_stmt *);
	int (*finalize)(sqlite3_stmt *);
	const char *(*errmsg)(sqlite3 *);
	void (*free)(void *);
	/* SQLite 3.36+ (or built with SQLITE_ENABLE_DESERIALIZE), else NULL */
	unsigned char *(*serialize)(sqlite3 *, const char *, long long *, unsigned);
};

int cov_sqlite_load(struct sqlite_api *sq, char *err, size_t errlen);

#endif
