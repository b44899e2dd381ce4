/*
 * probes.c - the probe collector of CPython 3.9-3.11 (start --collector
 * probe): every in-scope code object gets an instrumented copy, its
 * variant, with a probe before each line (payload/bytecode.c); functions
 * are pointed at the variants; each probe records its line once and turns
 * itself into a jump.  A line then costs one C call the first time it runs
 * and one JUMP_FORWARD after.
 *
 * What reaches the variants (../shared/probes.md, E4 and E9):
 * - every function object, found through gc.get_objects() (closures,
 *   lambdas in containers, methods, decorated functions), by setting
 *   __code__ (Objects/funcobject.c, func_set_code: checks the free
 *   variables; 3.11 also drops the function's specialisation version);
 * - code a running or suspended frame will make functions of later: the
 *   nested code objects in its code's co_consts are swapped in place,
 *   so a closure made after start is made of a variant;
 * - modules imported after start: importlib's _LoaderBasics.exec_module
 *   (what SourceFileLoader and SourcelessFileLoader run) is replaced by
 *   ours, which runs the variant of the module's code, nested code
 *   included, through _call_with_frames_removed as the original does, so
 *   tracebacks are trimmed as before.
 *
 * What cannot: a frame already running keeps its bytecode (3.9 and 3.10
 * read it once per frame: ceval.c first_instr), and so does a suspended
 * generator.  While an in-scope one lives ("watched"), the trace function
 * of trace.c runs too, in every thread as before, and tells variants'
 * frames not to send it line events (f_trace_lines = 0): their lines are
 * the probes'.  The sweep ends the watch when every watched frame is gone
 * or the watch window is over.  Nor can it reach sub-interpreters (each
 * has its own gc and importlib): their threads keep the trace function
 * all along (trace.c, skip_main).
 *
 * stop points every function back at its original, puts the co_consts
 * slots back, restores exec_module and turns every probe off, so a frame
 * that runs on in a variant costs a jump per line and records nothing.
 * dump --reset and a forked child turn every probe on again.
 *
 * All of it runs with the GIL held (the start pass gives it up between
 * batches, as modules.c does); the GIL is the lock of everything here.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "bytecode.h"
#include "collect.h"
#include "payload.h"
#include "probes.h"
#include "trace.h"
#include "variant.h"

static struct pyapi *py;
static const struct cov_optab *tab;
static PyObject *hit;			/* our probe function, never freed */
static PyObject *func_type, *gen_types[3];
static PyObject *loader_cls, *orig_exec, *our_exec, *call_removed, *exec_fn;
static PyObject *weakref_ref;
static Py_ssize_t off_co_code = -1, off_co_consts = -1, code_basicsize;
static int active;

/* Include/object.h, Include/cpython/tupleobject.h (3.9-3.11, default
 * builds): ob_size follows ob_type, a tuple's items follow ob_size. */
#define OB_TYPE(o)	(((void **)(o))[1])
#define OB_SIZE(o)	(((Py_ssize_t *)(o))[2])
#define TUPLE_ITEMS(t)	((PyObject **)((char *)(t) + 3 * sizeof(void *)))
#define SLOT(base, off)	(*(PyObject **)((char *)(base) + (off)))

/* ---- the registry: original code -> variant ---------------------------- */

struct variant {
	PyObject *orig, *code;	/* references held */
	uint32_t *probes;	/* byte offsets of the probes' NOPs */
	uint32_t *lines;	/* and their lines */
	uint32_t nprobes;
};

static struct variant *vars;
static size_t nvars, vcap;
static uint32_t *by_orig, *by_code;	/* open addressing: index + 1, 0 empty */
static size_t hcap;

/* A co_consts slot swapped in place, to put back at stop. */
struct slot {
	PyObject *tuple, *orig;		/* references held */
	Py_ssize_t i;
};

static struct slot *slots;
static size_t nslots, slot_cap;

/* Watched: frames running at start (the frame is not referenced, only
 * compared; its code is) and suspended generators (weak references).  A
 * frame is done once every line of its code ran (all_ran): it stays in
 * the list, unobserved, until it returns. */
struct watched {
	const void *frame;
	PyObject *code;
	int done;
};

static struct watched *frames;
static size_t nframes;
static PyObject **gens;
static size_t ngens;
static int watching;
static int passing;			/* between start and the end of the pass */
static int keep_gil;			/* never give the GIL up (uWSGI without threads) */
static int auto_chosen;			/* --collector auto: may go to the trace function */
static char switch_why[COV_WHY_MAX];	/* why it went, "" while probes run */
static int64_t watch_until_ns;		/* the watch window's end, 0: none */
static struct cov_probe_info stats;

static size_t hslot(const void *p)
{
	return ((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull >> 20;
}

static struct variant *find(const uint32_t *h, int code_side, const void *p)
{
	if (!hcap)
		return NULL;
	for (size_t i = hslot(p) & (hcap - 1);; i = (i + 1) & (hcap - 1)) {
		struct variant *v;

		if (!h[i])
			return NULL;
		v = &vars[h[i] - 1];
		if ((code_side ? v->code : v->orig) == p)
			return v;
	}
}

static void put(uint32_t *h, const void *p, uint32_t idx)
{
	size_t i = hslot(p) & (hcap - 1);

	while (h[i])
		i = (i + 1) & (hcap - 1);
	h[i] = idx;
}

static int rehash(size_t cap)
{
	uint32_t *a = calloc(cap, sizeof(*a)), *b = calloc(cap, sizeof(*b));

	if (!a || !b) {
		free(a);
		free(b);
		return -1;
	}
	free(by_orig);
	free(by_code);
	by_orig = a;
	by_code = b;
	hcap = cap;
	for (size_t i = 0; i < nvars; i++) {
		put(by_orig, vars[i].orig, (uint32_t)i + 1);
		put(by_code, vars[i].code, (uint32_t)i + 1);
	}
	return 0;
}

static int enroll(PyObject *orig, PyObject *code, uint32_t *probes, uint32_t *lines,
		  uint32_t n)
{
	if (nvars == vcap) {
		size_t cap = vcap ? 2 * vcap : 1024;
		struct variant *a = realloc(vars, cap * sizeof(*a));

		if (!a)
			return -1;
		vars = a;
		vcap = cap;
	}
	if (2 * (nvars + 1) > hcap && rehash(hcap ? 2 * hcap : 4096))
		return -1;
	vars[nvars] = (struct variant){ orig, code, probes, lines, n };
	nvars++;
	put(by_orig, orig, (uint32_t)nvars);
	put(by_code, code, (uint32_t)nvars);
	return 0;
}

/* ---- the hot path ------------------------------------------------------ */

/* The executed bytes of a code object, and how many. */
static uint8_t *code_bytes(PyObject *code, Py_ssize_t *n)
{
	PyObject *b;

	if (tab->minor >= 11) {	/* co_code_adaptive, inline (cpython/code.h) */
		*n = 2 * OB_SIZE(code);
		return (uint8_t *)code + code_basicsize;
	}
	b = SLOT(code, off_co_code);
	*n = py->Bytes_Size(b);
	return (uint8_t *)py->Bytes_AsString(b);
}

int cov_probes_variant(PyObject *code)
{
	PyObject *c;
	Py_ssize_t n;

	if (!active || !hit || OB_TYPE(code) != py->CodeType)
		return 0;	/* after stop, an old variant's lines are anyone's */
	c = SLOT(code, off_co_consts);
	n = OB_SIZE(c);
	return n > 0 && TUPLE_ITEMS(c)[n - 1] == hit;
}

/* A variant's probe, which is NOP until it ran. */
static int probe_at(const uint8_t *b, Py_ssize_t n, long off)
{
	uint8_t second;

	if (off < 0 || off + 3 >= n || (off & 1) ||
	    (b[off] != tab->nop && b[off] != tab->jump_fwd))
		return 0;
	second = b[off + 2];
	return tab->minor >= 11 ? second == tab->push_null :
	       second == tab->load_const || second == tab->ext;
}

static PyObject *none(void)
{
	py->IncRef(py->None);
	return py->None;
}

/* hit(offset), from a probe: the line, once; the NOP becomes a jump. */
static PyObject *on_hit(PyObject *self, PyObject *arg)
{
	PyFrameObject *frame;
	PyObject *code;
	long off = py->Long_AsLong(arg);
	Py_ssize_t n;
	uint8_t *b;

	(void)self;
	if (cov_collector_thread || !(frame = py->Eval_GetFrame())) {
		py->Err_Clear();
		return none();
	}
	code = py->Frame_GetCode(frame);
	if (cov_probes_variant(code) && (b = code_bytes(code, &n)) && probe_at(b, n, off) &&
	    b[off] == tab->nop) {
		b[off] = tab->jump_fwd;
		if (active) {
			struct cov_file *f = cov_collect_file(code);

			if (f && f->in_scope)
				cov_store_mark(f, py->Code_Addr2Line(code, (int)off));
		}
	}
	py->DecRef(code);
	py->Err_Clear();
	return none();
}

/*
 * hit is a method of a tuple, ("covinject line probe",).count as far as
 * pickle is concerned: a builtin bound to an object pickles as
 * getattr(self, name).  So cloudpickle and dill, which pickle a function's
 * code by value (constants included), write our copy with this stand-in,
 * and it loads anywhere as the real ().count, which takes the offset,
 * returns 0 and records nothing: the loaded function behaves as the
 * original, at the cost of one call per line.
 */
static struct py_methoddef hit_def = { "count", (void *)on_hit, PY_METH_O, NULL };

static PyObject *new_hit(void)
{
	PyObject *self = py->Tuple_New(1), *f = NULL;

	if (self && (TUPLE_ITEMS(self)[0] = py->Unicode_FromString("covinject line probe")))
		f = py->CFunction_NewEx(&hit_def, self, NULL);
	if (self)
		py->DecRef(self);
	return f;
}

/* Every probe of every variant on (NOP) or off (JUMP_FORWARD). */
static void set_probes(int on)
{
	for (size_t i = 0; i < nvars; i++) {
		Py_ssize_t n;
		uint8_t *b = vars[i].nprobes ? code_bytes(vars[i].code, &n) : NULL;

		for (uint32_t k = 0; b && k < vars[i].nprobes; k++)
			if (probe_at(b, n, vars[i].probes[k]))
				b[vars[i].probes[k]] = on ? tab->nop : tab->jump_fwd;
	}
}

/* The variant of code (a new reference), or code itself where it is not
 * measured, is a variant, or cannot be instrumented. */
static PyObject *instrument(PyObject *code, int depth)
{
	struct variant *e = find(by_orig, 0, code);
	struct cov_file *f;
	uint32_t *probes = NULL, *lines = NULL, n = 0;
	PyObject *v;

	if (e || (e = find(by_code, 1, code))) {
		py->IncRef(e->code);
		return e->code;
	}
	f = cov_collect_file(code);
	if (depth > 100 || !f || !f->in_scope || cov_probes_variant(code) ||
	    !(v = cov_variant_make(code, depth, instrument, &probes, &lines, &n))) {
		if (f && f->in_scope && depth <= 100 && !cov_probes_variant(code))
			stats.failed++;
		py->IncRef(code);
		return code;
	}
	py->IncRef(code);
	if (enroll(code, v, probes, lines, n)) {
		/* no room to remember it: a variant stop could not find */
		py->DecRef(code);
		py->DecRef(v);
		free(probes);
		free(lines);
		stats.failed++;
		py->IncRef(code);
		return code;
	}
	py->IncRef(v);	/* one for the registry, one for the caller */
	stats.codes++;
	return v;
}

/* ---- what code is running at start ------------------------------------- */

/* Nested code in a running code object's co_consts: their variants, in
 * place, so the functions it makes from now on are measured (E9). */
static void swap_consts(PyObject *code)
{
	PyObject *t = SLOT(code, off_co_consts);

	for (Py_ssize_t i = 0; i < OB_SIZE(t); i++) {
		PyObject *c = TUPLE_ITEMS(t)[i], *v;

		if (OB_TYPE(c) != py->CodeType || cov_probes_variant(c))
			continue;
		v = instrument(c, 1);
		if (v == c || nslots == slot_cap) {
			stats.failed += v != c;	/* its closures will not be measured */
			py->DecRef(v);
			continue;
		}
		py->IncRef(t);
		slots[nslots++] = (struct slot){ t, c, i };
		TUPLE_ITEMS(t)[i] = v;	/* the tuple's reference to c is ours now */
	}
}

static int measured(PyObject *code)
{
	struct cov_file *f = cov_collect_file(code);

	return f && f->in_scope && !cov_probes_variant(code);
}

#define CO_GENERATOR_LIKE (0x20 | 0x80 | 0x200)	/* generator, coroutine, async */

/* Has every line of code run, as its variant's probes know them?  Then
 * a frame that runs the original has nothing more to show. */
static int all_ran(PyObject *code)
{
	struct variant *e = find(by_orig, 0, code);
	struct cov_file *f = cov_collect_file(code);

	if (!e || !f)
		return 0;
	for (uint32_t k = 0; k < e->nprobes; k++)
		if (!cov_store_ran(f, (int)e->lines[k]))
			return 0;
	return 1;
}

static void watch_frame(PyFrameObject *fr, PyObject *code)
{
	struct watched *a = realloc(frames, (nframes + 1) * sizeof(*a));
	PyObject *v;

	swap_consts(code);
	if (!a)
		return;
	frames = a;
	v = instrument(code, 0);	/* its lines, for all_ran */
	py->DecRef(v);
	py->IncRef(code);
	frames[nframes++] = (struct watched){ fr, code, 0 };
}

/* Frames on every stack but ours: watched if measured, and their code's
 * nested code swapped.  Generators' frames are watched through the
 * generator (gc_find). */
static void watch_stacks(void)
{
	PyThreadState *me = py->ThreadState_Get();

	for (PyInterpreterState *in = py->InterpreterState_Head(); in;
	     in = py->InterpreterState_Next(in))
		for (PyThreadState *ts = py->InterpreterState_ThreadHead(in); ts;
		     ts = py->ThreadState_Next(ts)) {
			PyFrameObject *fr = ts == me ? NULL : py->ThreadState_GetFrame(ts), *back;

			for (; fr; fr = back) {
				PyObject *code = py->Frame_GetCode(fr);

				if (measured(code) &&
				    !(cov_int_attr(code, "co_flags") & CO_GENERATOR_LIKE))
					watch_frame(fr, code);
				py->DecRef(code);
				back = py->Frame_GetBack(fr);
				py->DecRef((PyObject *)fr);
			}
		}
	py->Err_Clear();
}

static PyObject *gen_code(PyObject *g)
{
	static const char *const frame_attr[] = { "gi_frame", "cr_frame", "ag_frame" };
	static const char *const code_attr[] = { "gi_code", "cr_code", "ag_code" };

	for (int k = 0; k < 3; k++) {
		PyObject *fr, *code;

		if (OB_TYPE(g) != gen_types[k])
			continue;
		if (!(fr = py->Object_GetAttrString(g, frame_attr[k])))
			return NULL;
		py->DecRef(fr);
		if (fr == py->None)
			return NULL;	/* finished */
		code = py->Object_GetAttrString(g, code_attr[k]);
		return code;
	}
	return NULL;
}

/* A generator, coroutine or async generator that has not finished. */
static void watch_gen(PyObject *g)
{
	PyObject *code = gen_code(g), *ref, **a;

	if (code && measured(code)) {
		if ((a = realloc(gens, (ngens + 1) * sizeof(*a))))
			gens = a;
		if (a && (ref = py->Object_CallFunctionObjArgs(weakref_ref, g, NULL))) {
			gens[ngens++] = ref;
			swap_consts(code);
		} else {
			stats.unwatched++;
		}
	}
	if (code)
		py->DecRef(code);
	py->Err_Clear();
}

/* ---- the gc pass ------------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Every ~2 ms of work, the GIL is given up for 0.5 ms: long enough for
 * a waiting thread to take it (modules.c reasons the same way). */
static void yield_gil(int hold, int64_t *since)
{
	PyThreadState *ts;
	int64_t now = now_ns();

	if (hold || cov_exiting() || now - *since < 2000000)
		return;
	ts = py->Eval_SaveThread();
	usleep(500);
	py->Eval_RestoreThread(ts);
	*since = now_ns();
}

/* The functions the gc found, being moved (gc_find, gc_move). */
struct fnlist {
	PyObject **fns;		/* references held */
	Py_ssize_t n, next;
};

static struct fnlist pending;	/* the pass after start, in slices */

static void fnlist_drop(struct fnlist *l)
{
	for (Py_ssize_t i = l->next; i < l->n; i++)
		py->DecRef(l->fns[i]);
	free(l->fns);
	memset(l, 0, sizeof(*l));
}

/* Every function the gc knows of, into l; with to_variant, generators
 * are watched.  0 or -1. */
static int gc_find(struct fnlist *l, int to_variant)
{
	PyObject *gc = py->Import_ImportModule("gc"), *all = NULL;
	Py_ssize_t n;

	memset(l, 0, sizeof(*l));
	if (!gc || !(all = py->Object_CallMethod(gc, "get_objects", NULL)) ||
	    (n = py->List_Size(all)) < 0 || !(l->fns = malloc((size_t)(n + 1) * sizeof(*l->fns))))
		goto out;
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *o = py->List_GetItem(all, i);

		if (OB_TYPE(o) == func_type) {
			py->IncRef(o);
			l->fns[l->n++] = o;
		} else if (to_variant) {
			watch_gen(o);
		}
	}
out:
	if (all)
		py->DecRef(all);
	if (gc)
		py->DecRef(gc);
	py->Err_Clear();
	return l->fns ? 0 : -1;
}

/* One function onto its variant (to_variant) or back on its original. */
static void move(PyObject *fn, int to_variant)
{
	PyObject *code = py->Object_GetAttrString(fn, "__code__"), *v = NULL;
	struct variant *e;

	if (code && to_variant) {
		v = instrument(code, 0);
	} else if (code && (e = find(by_code, 1, code)) && e->orig != code) {
		v = e->orig;
		py->IncRef(v);
	}
	if (v && v != code && py->Object_SetAttrString(fn, "__code__", v) == 0)
		stats.functions += to_variant;
	if (v)
		py->DecRef(v);
	if (code)
		py->DecRef(code);
	py->Err_Clear();
}

/* Move l's functions, giving the GIL up every ~2 ms unless hold, for at
 * most budget_ns (0: all).  1 if some are left. */
static int gc_move(struct fnlist *l, int to_variant, int hold, int64_t budget_ns)
{
	int64_t since = now_ns(), end = since + budget_ns;

	while (l->next < l->n && !cov_exiting()) {
		PyObject *fn = l->fns[l->next++];

		move(fn, to_variant);
		py->DecRef(fn);
		yield_gil(hold, &since);
		if (budget_ns && now_ns() >= end)
			break;
	}
	if (l->next < l->n && !cov_exiting())
		return 1;
	fnlist_drop(l);
	return 0;
}

/* Every function back on its original, at once. */
static void gc_restore(int hold)
{
	struct fnlist l;

	if (!gc_find(&l, 0))
		gc_move(&l, 0, hold, 0);
}

/* ---- modules imported after start -------------------------------------- */

/* _LoaderBasics.exec_module(self, module), ours: the original's steps
 * (Lib/importlib/_bootstrap_external.py) with the variant of the code. */
static void to_trace(void);

static int is_numba(PyObject *name)
{
	Py_ssize_t n;
	const char *s = py->Unicode_AsUTF8AndSize(name, &n);

	if (!s)
		py->Err_Clear();
	return s && n == 5 && !memcmp(s, "numba", 5);
}

static PyObject *on_exec_module(PyObject *self, PyObject *args)
{
	PyObject *loader, *module, *name = NULL, *code = NULL, *v = NULL, *d, *r = NULL;

	(void)self;
	if (py->Tuple_Size(args) != 2)
		return py->Object_Call(orig_exec, args, NULL);
	loader = py->Tuple_GetItem(args, 0);
	module = py->Tuple_GetItem(args, 1);
	if (!(name = py->Object_GetAttrString(module, "__name__")))
		goto out;	/* its exception, as the original would raise */
	if (active && auto_chosen && is_numba(name)) {
		PyObject *orig = orig_exec;	/* to_trace lets it go */

		py->IncRef(orig);
		to_trace();
		r = py->Object_Call(orig, args, NULL);
		py->DecRef(orig);
		goto out;
	}
	if (!(code = py->Object_CallMethod(loader, "get_code", "O", name)))
		goto out;
	if (code == py->None || OB_TYPE(code) != py->CodeType || !active) {
		r = py->Object_Call(orig_exec, args, NULL);	/* its own error */
		goto out;
	}
	v = instrument(code, 0);
	if ((d = py->Object_GetAttrString(module, "__dict__"))) {
		r = py->Object_CallFunctionObjArgs(call_removed, exec_fn, v, d, NULL);
		py->DecRef(d);
	}
out:
	if (v)
		py->DecRef(v);
	if (code)
		py->DecRef(code);
	if (name)
		py->DecRef(name);
	if (r) {
		py->DecRef(r);
		return none();
	}
	return NULL;
}

static struct py_methoddef exec_def = {
	"exec_module", (void *)on_exec_module, PY_METH_VARARGS, NULL
};

static PyObject *module_attr(const char *mod, const char *name)
{
	PyObject *m = py->Import_ImportModule(mod), *v = NULL;

	if (m) {
		v = py->Object_GetAttrString(m, name);
		py->DecRef(m);
	}
	return v;
}

/* cls.__dict__[name] (a new reference), not what getattr binds. */
static PyObject *class_attr(PyObject *cls, const char *name)
{
	PyObject *d = py->Object_GetAttrString(cls, "__dict__"), *v = NULL;

	if (d) {
		v = py->Object_CallMethod(d, "get", "s", name);
		py->DecRef(d);
	}
	return v;
}

static int hook_imports(void)
{
	PyObject *f;

	if (!loader_cls && !(loader_cls = module_attr("_frozen_importlib_external",
						      "_LoaderBasics")))
		return -1;
	if (!call_removed &&
	    !(call_removed = module_attr("_frozen_importlib", "_call_with_frames_removed")))
		return -1;
	if (!exec_fn && !(exec_fn = module_attr("builtins", "exec")))
		return -1;
	if (!our_exec) {
		if (!(f = py->CFunction_NewEx(&exec_def, NULL, NULL)))
			return -1;
		our_exec = py->InstanceMethod_New(f);	/* holds f */
		py->DecRef(f);
		if (!our_exec)
			return -1;
	}
	if ((orig_exec = class_attr(loader_cls, "exec_module")) == py->None) {
		py->DecRef(orig_exec);
		orig_exec = NULL;
	}
	if (!orig_exec)
		return -1;
	return py->Object_SetAttrString(loader_cls, "exec_module", our_exec);
}

/* The original back, unless the program replaced ours since. */
static void unhook_imports(void)
{
	PyObject *now;

	if (!orig_exec)
		return;
	now = class_attr(loader_cls, "exec_module");
	if (now == our_exec)
		py->Object_SetAttrString(loader_cls, "exec_module", orig_exec);
	if (now)
		py->DecRef(now);
	py->DecRef(orig_exec);
	orig_exec = NULL;
	py->Err_Clear();
}

/* ---- start, sweep, stop ------------------------------------------------ */

static int load_types(void)
{
	static const char *const names[] = { "GeneratorType", "CoroutineType",
					     "AsyncGeneratorType" };
	PyObject *types = py->Import_ImportModule("types");

	if (!types)
		return -1;
	func_type = py->Object_GetAttrString(types, "FunctionType");
	for (int k = 0; k < 3; k++)
		gen_types[k] = py->Object_GetAttrString(types, names[k]);
	py->DecRef(types);
	weakref_ref = module_attr("_weakref", "ref");
	return func_type && gen_types[0] && gen_types[1] && gen_types[2] && weakref_ref ? 0 : -1;
}

static int prepare(char *err, size_t len)
{
	void **type = py->CodeType;

	if (py->hex < 0x03090000 || py->hex >= 0x030c0000) {
		snprintf(err, len, "--collector probe is for Python 3.9-3.11 (3.12 and "
			 "later use sys.monitoring)");
		return -1;
	}
	if (!py->Bytes_FromStringAndSize || !py->Eval_GetFrame || !py->Code_Addr2Line ||
	    !py->InstanceMethod_New || !py->Object_GC_UnTrack ||
	    !py->ThreadState_GetInterpreter) {
		snprintf(err, len, "the probe collector needs functions this Python lacks");
		return -1;
	}
	off_co_consts = cov_member_offset(py->CodeType, "code", "co_consts");
	off_co_code = cov_member_offset(py->CodeType, "code", "co_code");
	code_basicsize = (Py_ssize_t)type[4];	/* tp_basicsize follows tp_name */
	if (off_co_consts <= 0 || (py->hex < 0x030b0000 && off_co_code <= 0) ||
	    (!hit && !(hit = new_hit())) ||
	    cov_variant_init(py, hit, &tab) || (!func_type && load_types())) {
		py->Err_Clear();
		snprintf(err, len, "the probe collector does not know this Python's "
			 "code objects");
		return -1;
	}
	return 0;
}

/*
 * What --collector auto leaves to the trace function: a process where
 * something reads the bytecode of Python functions to run it otherwise.
 * numba compiles a function from its __code__ when it is first called,
 * and would meet our probe calls there; a frame evaluation function of
 * PEP 523 (a JIT such as torch's dynamo, a debugger's frame evaluator)
 * does the same with every frame.
 */
const char *cov_probes_unsafe(struct pyapi *api, char *why, size_t len)
{
	PyObject *mods = api->Import_GetModuleDict();
	PyInterpreterState *interp;

	if (mods && api->Dict_GetItemString(mods, "numba")) {
		snprintf(why, len, "numba is loaded, which compiles functions from "
			 "their bytecode, and probes would change it (start "
			 "--collector probe uses them anyway)");
		return why;
	}
	if (api->Interp_GetEvalFrameFunc && api->EvalFrameDefault && api->ThreadState_GetInterpreter &&
	    (interp = api->ThreadState_GetInterpreter(api->ThreadState_Get())) &&
	    api->Interp_GetEvalFrameFunc(interp) != api->EvalFrameDefault) {
		snprintf(why, len, "a frame evaluation function of PEP 523 is installed "
			 "(a JIT or a debugger that reads bytecode), and probes "
			 "would change what it reads (start --collector probe uses "
			 "them anyway)");
		return why;
	}
	return NULL;
}

int cov_probes_start(struct pyapi *api, const struct cov_collect_opts *o,
		     struct cov_collect_info *info, char *err, size_t len)
{
	py = api;
	keep_gil = o->keep_gil;
	auto_chosen = o->collector == COV_COLLECTOR_AUTO;
	switch_why[0] = 0;
	if (prepare(err, len))
		return -1;
	memset(&stats, 0, sizeof(stats));
	slot_cap = 65536;
	if (!slots && !(slots = calloc(slot_cap, sizeof(*slots)))) {
		snprintf(err, len, "out of memory");
		return -1;
	}
	active = 1;
	if (hook_imports()) {
		active = 0;
		py->Err_Clear();
		snprintf(err, len, "cannot hook importlib's exec_module");
		return -1;
	}
	watch_stacks();
	/* The trace function on every thread until the pass has moved every
	 * function (cov_probes_pass), then for the frames from start only,
	 * if any; all along for sub-interpreters, whose functions and imports
	 * the pass cannot reach (each has its own gc and importlib). */
	if (cov_trace_start(py, 1, info, err, len)) {
		cov_probes_stop();
		return -1;
	}
	passing = 1;
	if (keep_gil)
		cov_probes_pass();
	watch_until_ns = o->watch_ms ? now_ns() + (int64_t)o->watch_ms * 1000000 : 0;
	py->Err_Clear();
	stats.watched = (uint32_t)(nframes + ngens);
	return 0;
}

static size_t need_watch(void);

/* After start returned, on the payload thread, in slices of 50 ms so
 * that requests are served in between (keep_gil: all of it in start's own
 * hold): every function found by the gc onto its variant, with the GIL
 * given up every ~2 ms (keep_gil: never); then the main interpreter's
 * threads keep the trace function only for frames from start.  1 while
 * there is more to do. */
int cov_probes_pass(void)
{
	if (!active || !passing)
		return 0;
	if (!pending.fns && gc_find(&pending, 1))
		pending.n = 0;	/* nothing found: nothing to move */
	if (gc_move(&pending, 1, keep_gil, keep_gil ? 0 : 50000000))
		return 1;
	passing = 0;
	watching = nframes || ngens;
	if (!watching)
		cov_trace_release_main();
	stats.watched = (uint32_t)need_watch();
	return 0;
}

/* Is a watched frame still on some stack, a generator not done? */
static void watch_sweep(void)
{
	size_t keep = 0, seen = 0;

	for (PyInterpreterState *in = py->InterpreterState_Head(); in && nframes;
	     in = py->InterpreterState_Next(in))
		for (PyThreadState *ts = py->InterpreterState_ThreadHead(in); ts;
		     ts = py->ThreadState_Next(ts)) {
			PyFrameObject *fr = py->ThreadState_GetFrame(ts), *back;

			for (; fr; fr = back) {
				for (size_t i = seen; i < nframes; i++)
					if (frames[i].frame == fr) {
						struct watched w = frames[i];

						frames[i] = frames[seen];
						frames[seen++] = w;
						break;
					}
				back = py->Frame_GetBack(fr);
				py->DecRef((PyObject *)fr);
			}
		}
	for (size_t i = seen; i < nframes; i++)
		py->DecRef(frames[i].code);	/* returned */
	nframes = seen;
	for (size_t i = 0; i < nframes; i++)
		frames[i].done = frames[i].done || all_ran(frames[i].code);
	for (size_t i = 0; i < ngens; i++) {
		PyObject *g = py->Object_CallFunctionObjArgs(gens[i], NULL), *code;

		code = g && g != py->None ? gen_code(g) : NULL;
		if (code && !all_ran(code)) {
			gens[keep++] = gens[i];
		} else {
			py->DecRef(gens[i]);	/* finished, or nothing left to show */
		}
		if (code)
			py->DecRef(code);
		if (g)
			py->DecRef(g);
	}
	ngens = keep;
	py->Err_Clear();
}

/* Frames from start that still need the trace function. */
static size_t need_watch(void)
{
	size_t n = ngens;

	for (size_t i = 0; i < nframes; i++)
		n += !frames[i].done;
	return n;
}

/* No frame from start is watched any more: the main interpreter's
 * threads lose the trace function. */
static void drop_watch(void)
{
	for (size_t i = 0; i < ngens; i++)
		py->DecRef(gens[i]);
	ngens = 0;
	if (watching)
		cov_trace_release_main();
	watching = 0;
}

static void forget_frames(void)
{
	for (size_t i = 0; i < nframes; i++)
		py->DecRef(frames[i].code);
	nframes = 0;
}

void cov_probes_sweep(struct cov_sweep *out)
{
	if (!active)
		return;
	if (nframes || ngens)
		watch_sweep();
	if (watching) {
		size_t need = need_watch();

		if (need && watch_until_ns && now_ns() >= watch_until_ns) {
			stats.unobserved = (uint32_t)need;
			stats.unobserved_ns = watch_until_ns;
		}
		if (!need || stats.unobserved) {
			drop_watch();
			if (stats.unobserved)
				forget_frames();
		}
	}
	cov_trace_sweep(out);
	stats.watched = (uint32_t)need_watch();
}

void cov_probes_info(struct cov_probe_info *out)
{
	*out = stats;
	out->watching = (uint32_t)watching;
	out->passing = (uint32_t)passing;
}

/* After a reset the lines start afresh: frames from start that were done
 * run lines that are new again.  While the trace function still runs for
 * others, it sees them too; once it is gone, status says so. */
void cov_probes_rearm(void)
{
	int traced = watching || passing;	/* the trace function is still on */

	if (!active)
		return;
	set_probes(1);
	for (size_t i = 0; i < nframes; i++)
		if (frames[i].done && !traced) {
			stats.unobserved++;
			stats.unobserved_ns = now_ns();
		} else {
			frames[i].done = 0;
		}
	if (!traced)
		forget_frames();
}

/*
 * --collector auto, and the program imports numba (cov_probes_unsafe says
 * why that matters): from inside that import, in the program's thread,
 * every function goes back to its original code, as stop does, and the
 * trace function takes over in every thread.  The GIL is held all along:
 * no function numba could compile is left on a variant meanwhile.  What
 * the probes recorded stays.
 */
static void to_trace(void)
{
	struct cov_collect_info info;
	char err[96];
	int keep = keep_gil;
	time_t t = time(NULL);
	struct tm tm;
	char at[16];

	strftime(at, sizeof(at), "%H:%M:%S", localtime_r(&t, &tm));
	keep_gil = 1;
	cov_probes_stop();
	keep_gil = keep;
	if (cov_trace_start(py, 1, &info, err, sizeof(err)))
		snprintf(switch_why, sizeof(switch_why), "numba was imported at %s, "
			 "and the probes were removed, but the trace function could "
			 "not start: %.90s; nothing is collected", at, err);
	else
		snprintf(switch_why, sizeof(switch_why), "numba was imported at %s, "
			 "which compiles functions from their bytecode: the probes "
			 "were removed then (what they recorded is kept)", at);
	/* the sweep gives every thread the tracer but its own: this one,
	 * the importer's, gets it now, not at the next sweep */
	cov_trace_new_thread();
	cov_wake_sweep();	/* status says it now */
	py->Err_Clear();
}

int cov_probes_active(void)
{
	return active;
}

const char *cov_probes_switched(void)
{
	return switch_why[0] ? switch_why : NULL;
}

void cov_probes_stop(void)
{
	int64_t since;

	if (!active)
		return;
	active = 0;
	unhook_imports();
	passing = 0;
	drop_watch();
	forget_frames();
	cov_trace_stop();
	for (size_t i = nslots; i-- > 0;) {
		PyObject *v = TUPLE_ITEMS(slots[i].tuple)[slots[i].i];

		TUPLE_ITEMS(slots[i].tuple)[slots[i].i] = slots[i].orig;
		py->DecRef(v);
		py->DecRef(slots[i].tuple);
	}
	nslots = 0;
	set_probes(0);	/* what still runs a variant records nothing now */
	fnlist_drop(&pending);	/* a pass not finished */
	/* Every function back on its original, giving the GIL up as it goes;
	 * then, in one hold, those a variant made meanwhile. */
	if (!cov_exiting())
		gc_restore(keep_gil);
	if (!cov_exiting() && !keep_gil)
		gc_restore(1);
	/* the variants freed, also between short GIL releases: 200,000 code
	 * objects take 100 ms (bench/probepass.py) */
	since = now_ns();
	for (size_t i = 0; i < nvars; i++) {
		py->DecRef(vars[i].orig);
		py->DecRef(vars[i].code);
		free(vars[i].probes);
		free(vars[i].lines);
		yield_gil(keep_gil, &since);
	}
	nvars = 0;
	if (hcap) {
		memset(by_orig, 0, hcap * sizeof(*by_orig));
		memset(by_code, 0, hcap * sizeof(*by_code));
	}
}
