/*
 * pyapi.c - the only file that calls dlsym: the CPython C-API and SQLite,
 * found at run time.
 *
 * dlsym(RTLD_DEFAULT) finds the interpreter whether libpython is a shared
 * library (pyenv builds: DT_NEEDED of the executable) or linked into an
 * executable built with --export-dynamic (Debian's /usr/bin/python3.X).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "oldapi.h"
#include "pyapi.h"

/*
 * Include/cpython/object.h, PyTypeObject: fields up to tp_members are all
 * pointer-sized on LP64 (default, non-free-threaded builds, 3.9-3.15):
 * tp_name is field 3, tp_members field 30.
 */
#define TP_NAME_WORD	3
#define TP_MEMBERS_WORD	30

/* Include/descrobject.h, PyMemberDef: {name, type, offset, flags, doc}. */
struct py_memberdef {
	const char *name;
	int type;
	Py_ssize_t offset;
	int flags;
	const char *doc;
};

struct sym {
	const char *name;
	size_t off;
	int optional;
};

#define F(field, name) { name, offsetof(struct pyapi, field), 0 }
#define OPT(field, name) { name, offsetof(struct pyapi, field), 1 }

static const struct sym py_syms[] = {
	F(IsInitialized, "Py_IsInitialized"),
	F(GetVersion, "Py_GetVersion"),
	F(GILState_Ensure, "PyGILState_Ensure"),
	F(GILState_Release, "PyGILState_Release"),
	F(ThreadState_Get, "PyThreadState_Get"),
	OPT(InterpreterState_Main, "PyInterpreterState_Main"),
	F(InterpreterState_ThreadHead, "PyInterpreterState_ThreadHead"),
	OPT(GILState_Check, "PyGILState_Check"),
	F(GILState_GetThisThreadState, "PyGILState_GetThisThreadState"),
	F(InterpreterState_Head, "PyInterpreterState_Head"),
	F(InterpreterState_Next, "PyInterpreterState_Next"),
	F(ThreadState_Next, "PyThreadState_Next"),
	OPT(Import_GetModule, "PyImport_GetModule"),
	F(Import_ImportModule, "PyImport_ImportModule"),
	F(Object_GetAttrString, "PyObject_GetAttrString"),
	F(Object_SetAttrString, "PyObject_SetAttrString"),
	F(Object_CallMethod, "PyObject_CallMethod"),
	F(Object_Str, "PyObject_Str"),
	F(Object_Call, "PyObject_Call"),
	F(Object_CallFunctionObjArgs, "PyObject_CallFunctionObjArgs"),
	F(Dict_New, "PyDict_New"),
	F(Dict_SetItemString, "PyDict_SetItemString"),
	F(Tuple_New, "PyTuple_New"),
	F(Long_FromLong, "PyLong_FromLong"),
	F(Long_AsLong, "PyLong_AsLong"),
	OPT(Unicode_FromString, "PyUnicode_FromString"),
	OPT(Unicode_AsUTF8AndSize, "PyUnicode_AsUTF8AndSize"),
	F(CFunction_NewEx, "PyCFunction_NewEx"),
	F(IncRef, "Py_IncRef"),
	F(DecRef, "Py_DecRef"),
	F(Err_Occurred, "PyErr_Occurred"),
	F(Err_Fetch, "PyErr_Fetch"),
	F(Err_Restore, "PyErr_Restore"),
	F(Err_Clear, "PyErr_Clear"),
	F(Eval_SaveThread, "PyEval_SaveThread"),
	F(Eval_RestoreThread, "PyEval_RestoreThread"),
	F(Sys_GetObject, "PySys_GetObject"),
	F(Dict_GetItemString, "PyDict_GetItemString"),
	F(Dict_Values, "PyDict_Values"),
	F(Object_IsInstance, "PyObject_IsInstance"),
	F(Object_GetIter, "PyObject_GetIter"),
	F(Iter_Next, "PyIter_Next"),
	F(List_Size, "PyList_Size"),
	F(List_GetItem, "PyList_GetItem"),
	F(List_Insert, "PyList_Insert"),
	F(List_SetSlice, "PyList_SetSlice"),
	F(Tuple_Size, "PyTuple_Size"),
	F(Tuple_GetItem, "PyTuple_GetItem"),
	F(Build_Value, "Py_BuildValue"),
	OPT(Bytes_AsString, "PyBytes_AsString"),
	OPT(Bytes_Size, "PyBytes_Size"),
	F(Marshal_ReadObjectFromString, "PyMarshal_ReadObjectFromString"),
	F(Import_GetMagicNumber, "PyImport_GetMagicNumber"),
	OPT(CompileStringExFlags, "Py_CompileStringExFlags"),
	F(ExcWarning, "PyExc_Warning"),
	F(Module_GetDict, "PyModule_GetDict"),
	F(Object_IsTrue, "PyObject_IsTrue"),
	F(ModuleType, "PyModule_Type"),
	OPT(Frame_GetCode, "PyFrame_GetCode"),
	F(Frame_GetLineNumber, "PyFrame_GetLineNumber"),
	F(Eval_SetTrace, "PyEval_SetTrace"),
	F(Eval_SetProfile, "PyEval_SetProfile"),
	F(Import_GetModuleDict, "PyImport_GetModuleDict"),
	F(Dict_GetItem, "PyDict_GetItem"),
	OPT(Eval_SetTraceTs, "_PyEval_SetTrace"),
	OPT(ThreadState_GetID, "PyThreadState_GetID"),
	OPT(ThreadState_GetFrame, "PyThreadState_GetFrame"),
	OPT(Frame_GetBack, "PyFrame_GetBack"),
	F(ThreadState_New, "PyThreadState_New"),
	F(ThreadState_Swap, "PyThreadState_Swap"),
	OPT(Eval_ThreadsInitialized, "PyEval_ThreadsInitialized"),
	OPT(Eval_InitThreads, "PyEval_InitThreads"),
	F(ThreadState_Clear, "PyThreadState_Clear"),
	F(ThreadState_Delete, "PyThreadState_Delete"),
	OPT(InterpreterState_GetID, "PyInterpreterState_GetID"),
	F(Eval_AcquireThread, "PyEval_AcquireThread"),
	OPT(Interp_HasFeature, "_PyInterpreterState_HasFeature"),
	OPT(InterpConfig_FromState, "_PyInterpreterConfig_InitFromState"),
	OPT(Bytes_FromStringAndSize, "PyBytes_FromStringAndSize"),
	OPT(Eval_GetFrame, "PyEval_GetFrame"),
	OPT(Code_Addr2Line, "PyCode_Addr2Line"),
	OPT(InstanceMethod_New, "PyInstanceMethod_New"),
	OPT(ThreadState_GetInterpreter, "PyThreadState_GetInterpreter"),
	OPT(Object_GC_UnTrack, "PyObject_GC_UnTrack"),
	OPT(Interp_GetEvalFrameFunc, "_PyInterpreterState_GetEvalFrameFunc"),
	OPT(EvalFrameDefault, "_PyEval_EvalFrameDefault"),
	F(None, "_Py_NoneStruct"),
	F(CodeType, "PyCode_Type"),
	F(FrameType, "PyFrame_Type"),
	/* 2.7's names for what 3.x calls otherwise (oldapi.c) */
	OPT(String_FromString, "PyString_FromString"),
	OPT(String_AsStringAndSize, "PyString_AsStringAndSize"),
	OPT(String_AsString, "PyString_AsString"),
	OPT(String_Size, "PyString_Size"),
	OPT(CompileStringFlags, "Py_CompileStringFlags"),
	OPT(StringType, "PyString_Type"),
	OPT(ThreadStateCurrent, "_PyThreadState_Current"),
};

static int resolve(void *table, const struct sym *s, size_t n, void *lib,
		   char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		void *p = dlsym(lib, s[i].name);

		if (!p && !s[i].optional) {
			snprintf(err, errlen, "symbol %s not found", s[i].name);
			return -1;
		}
		memcpy((char *)table + s[i].off, &p, sizeof(p));
	}
	return 0;
}

/* "3.12.1 (main, ..." -> 0x030c01f0 (final release; enough for our checks) */
static int version_hex(const char *v)
{
	int maj = 0, min = 0, mic = 0;

	if (sscanf(v, "%d.%d.%d", &maj, &min, &mic) < 2)
		return 0;
	return (maj << 24) | (min << 16) | (mic << 8) | 0xf0;
}

Py_ssize_t cov_member_offset(void *type, const char *tp_name, const char *member)
{
	void **t = type;
	const struct py_memberdef *m;

	if (!t[TP_NAME_WORD] || strcmp(t[TP_NAME_WORD], tp_name))
		return -1;	/* layout not what we expect: do not guess */
	for (m = t[TP_MEMBERS_WORD]; m && m->name; m++)
		if (!strcmp(m->name, member))
			return m->offset;
	return -1;
}

/* First word of the n at base equal to v, as a byte offset, if unique. */
Py_ssize_t cov_find_word(const void *base, int n, const void *v)
{
	void *const *w = base;
	int at = -1;

	for (int i = 0; i < n; i++) {
		if (w[i] != v)
			continue;
		if (at >= 0)
			return -1;
		at = i;
	}
	return at < 0 ? -1 : at * (Py_ssize_t)sizeof(void *);
}

/* Include/object.h: ob_type follows ob_refcnt (default builds, 3.9-3.15). */
const char *cov_type_name(PyObject *o)
{
	void **type = ((void ***)o)[1];

	return type[TP_NAME_WORD];
}

int cov_pyapi_threads_initialized(void)
{
	int (*fn)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "PyEval_ThreadsInitialized");

	return !fn || fn();
}

int cov_pyapi_load(struct pyapi *py, char *err, size_t errlen)
{
	if (resolve(py, py_syms, sizeof(py_syms) / sizeof(py_syms[0]),
		    RTLD_DEFAULT, err, errlen))
		return -1;
	py->hex = version_hex(py->GetVersion());
	py->off_co_filename = cov_member_offset(py->CodeType, "code", "co_filename");
	py->off_f_trace_lines = cov_member_offset(py->FrameType, "frame", "f_trace_lines");
	if (py->off_co_filename <= 0) {
		snprintf(err, errlen, "code object layout not recognised");
		return -1;
	}
	if (cov_oldapi_fill(py)) {
		snprintf(err, errlen, "frame object layout not recognised");
		return -1;
	}
	if (cov_oldapi_missing(py)) {
		snprintf(err, errlen, "symbol %s not found", cov_oldapi_missing(py));
		return -1;
	}
	return 0;
}

#define S(field, name) { name, offsetof(struct sqlite_api, field), 0 }
#define S_OPT(field, name) { name, offsetof(struct sqlite_api, field), 1 }

static const struct sym sq_syms[] = {
	S(open_v2, "sqlite3_open_v2"),
	S(close, "sqlite3_close"),
	S(exec, "sqlite3_exec"),
	S(prepare_v2, "sqlite3_prepare_v2"),
	S(bind_int64, "sqlite3_bind_int64"),
	S(bind_text, "sqlite3_bind_text"),
	S(bind_blob, "sqlite3_bind_blob"),
	S(step, "sqlite3_step"),
	S(reset, "sqlite3_reset"),
	S(finalize, "sqlite3_finalize"),
	S(errmsg, "sqlite3_errmsg"),
	S(free, "sqlite3_free"),
	S_OPT(serialize, "sqlite3_serialize"),
};

/*
 * The target's own libsqlite3 (the one its sqlite3 module uses), loaded
 * RTLD_LOCAL so it adds no symbols to the host's global namespace.
 */
int cov_sqlite_load(struct sqlite_api *sq, char *err, size_t errlen)
{
	static void *lib;

	if (!lib)
		lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "load libsqlite3.so.0: %s", dlerror());
		return -1;
	}
	return resolve(sq, sq_syms, sizeof(sq_syms) / sizeof(sq_syms[0]), lib,
		       err, errlen);
}
