/*
 * got.c - three C entry points of the interpreter we step in front of, by
 * pointing the GOT cells that name them at our functions while collecting
 * (stop puts every cell back):
 *
 *   _exit, in the interpreter's own object (libpython, or the executable
 *   when libpython is linked in): os._exit runs no atexit hook, and
 *   multiprocessing's and Celery's (billiard's) pool workers end with it.
 *   exit_hook writes the final snapshot (cov_on_exit) when Python calls it
 *   in the very process that is collecting, with the GIL held, then calls
 *   the real _exit; any other caller goes straight on: a child of fork or
 *   vfork that exits (subprocess's, on a failed exec: another pid, and a
 *   vfork child shares our memory, so it must touch nothing), C code
 *   without the GIL.  os._exit stays the same object; only its exit takes
 *   the few milliseconds of the write.
 *
 *   PyGILState_Ensure, in every other object (3.9-3.11, the trace-function
 *   collector): a thread that C code brings into Python (Apache's request
 *   threads under mod_wsgi) gets a new thread state there, often for one
 *   request only, which the one-second sweep would never see.  ensure_hook
 *   gives a thread state it just created the tracer, from its first frame.
 *
 *   PyEval_AcquireThread, likewise: how mod_wsgi enters a sub-interpreter,
 *   on thread states it makes itself with PyThreadState_New.  acquire_hook
 *   gives one the sweep never met the tracer before its first frame.
 *
 * The cells are data, in each object's relocation targets: every PLT slot
 * whose relocation names the symbol (generic ELF: DT_JMPREL lists only such
 * slots), and any other cell naming it that holds its address (a GLOB_DAT
 * of -fno-plt code).  A cell in the object's PT_GNU_RELRO range is
 * read-only after loading: made writable for the store, then read-only
 * again.
 */
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "collect.h"
#include "payload.h"

#define MAX_CELLS 512	/* objects that call the hooked functions */

/* A loaded object: its load address and program headers. */
struct object {
	uintptr_t base;
	const ElfW(Phdr) *ph;
	int nph;
};

/* A cell we changed, and what it held.  Written at start and stop, by the
 * payload thread with the GIL held; read by nobody else. */
struct cell {
	uintptr_t *at;
	uintptr_t was;
	struct object o;
};

static struct cell cells[MAX_CELLS];
static int ncells;
static uintptr_t interp_code;	/* an address in the interpreter's object */

static void exit_hook(int status)
{
	if (cov_state.pid == getpid() && !cov_state.unhooked &&
	    cov_py.GILState_Check())
		cov_on_exit();
	_exit(status);
}

static int ensure_hook(void)
{
	int fresh = !cov_py.GILState_GetThisThreadState();
	int r = cov_py.GILState_Ensure();

	if (fresh)
		cov_collect_new_thread();
	return r;
}

static void acquire_hook(PyThreadState *ts)
{
	cov_py.Eval_AcquireThread(ts);
	cov_collect_acquired();
}

/* glibc's loader made some d_ptr absolute (see inject/elf.c); others not. */
static uintptr_t absolute(const struct object *o, uintptr_t v)
{
	return v < o->base ? v + o->base : v;
}

static int in_relro(const struct object *o, uintptr_t a)
{
	for (int i = 0; i < o->nph; i++)
		if (o->ph[i].p_type == PT_GNU_RELRO &&
		    a >= o->base + o->ph[i].p_vaddr &&
		    a < o->base + o->ph[i].p_vaddr + o->ph[i].p_memsz)
			return 1;
	return 0;
}

/* Store v at cell, through mprotect if the cell is read-only after RELRO. */
static int store(const struct object *o, uintptr_t *at, uintptr_t v)
{
	uintptr_t page = (uintptr_t)at & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
	size_t len = (uintptr_t)(at + 1) - page;
	int ro = in_relro(o, (uintptr_t)at);

	if (ro && mprotect((void *)page, len, PROT_READ | PROT_WRITE))
		return -1;
	__atomic_store_n(at, v, __ATOMIC_SEQ_CST);
	if (ro)
		mprotect((void *)page, len, PROT_READ);
	return 0;
}

/* What to hook: the symbol, its real address, ours. */
struct hook {
	const char *sym;
	uintptr_t real, ours;
};

/* Every relocation of table (n bytes) that names the symbol; plt: any. */
static void hook_cells(const struct object *o, const ElfW(Rela) *r, size_t n,
		       const ElfW(Sym) *syms, const char *strs, int plt,
		       const struct hook *h)
{
	for (size_t i = 0; i < n / sizeof(*r) && ncells < MAX_CELLS; i++) {
		const ElfW(Sym) *s = &syms[ELF64_R_SYM(r[i].r_info)];
		uintptr_t *at = (uintptr_t *)(o->base + r[i].r_offset);

		if (!ELF64_R_SYM(r[i].r_info) || strcmp(strs + s->st_name, h->sym))
			continue;
		if ((!plt && *at != h->real) || *at == h->ours)
			continue;
		cells[ncells] = (struct cell){ at, *at, *o };
		if (store(o, at, h->ours) == 0)
			ncells++;
	}
}

static void hook_object(const struct object *o, const ElfW(Dyn) *d,
			const struct hook *h)
{
	const ElfW(Rela) *jmprel = NULL, *rela = NULL;
	const ElfW(Sym) *syms = NULL;
	const char *strs = NULL;
	size_t njmp = 0, nrela = 0;

	for (; d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_JMPREL: jmprel = (void *)absolute(o, d->d_un.d_ptr); break;
		case DT_PLTRELSZ: njmp = d->d_un.d_val; break;
		case DT_RELA: rela = (void *)absolute(o, d->d_un.d_ptr); break;
		case DT_RELASZ: nrela = d->d_un.d_val; break;
		case DT_SYMTAB: syms = (void *)absolute(o, d->d_un.d_ptr); break;
		case DT_STRTAB: strs = (void *)absolute(o, d->d_un.d_ptr); break;
		}
	}
	if (!syms || !strs)
		return;
	if (jmprel)
		hook_cells(o, jmprel, njmp, syms, strs, 1, h);
	if (rela)
		hook_cells(o, rela, nrela, syms, strs, 0, h);
}

/* _exit in the interpreter's object; the others in every other
 * (not ours: the payload calls the interpreter through pointers). */
static int holds(const struct object *o, uintptr_t a)
{
	for (int i = 0; i < o->nph; i++)
		if (o->ph[i].p_type == PT_LOAD && a >= o->base + o->ph[i].p_vaddr &&
		    a < o->base + o->ph[i].p_vaddr + o->ph[i].p_memsz)
			return 1;
	return 0;
}

static int each_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	const struct hook *h = arg;
	struct object o = { info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum };
	int interp = holds(&o, interp_code);

	(void)size;
	if (interp != !strcmp(h->sym, "_exit"))
		return 0;
	for (int i = 0; i < o.nph; i++)
		if (o.ph[i].p_type == PT_DYNAMIC)
			hook_object(&o, (const ElfW(Dyn) *)(o.base + o.ph[i].p_vaddr), h);
	return 0;
}

/* At start, with the GIL held: trace says the collector is the trace
 * function (3.9-3.11), which needs new threads' first frames. */
void cov_got_install(int trace)
{
	struct hook ex = { "_exit", (uintptr_t)&_exit, (uintptr_t)exit_hook };
	struct hook en = { "PyGILState_Ensure", (uintptr_t)cov_py.GILState_Ensure,
			   (uintptr_t)ensure_hook };
	struct hook aq = { "PyEval_AcquireThread", (uintptr_t)cov_py.Eval_AcquireThread,
			   (uintptr_t)acquire_hook };

	if (ncells)
		return;
	interp_code = (uintptr_t)cov_py.GetVersion;
	dl_iterate_phdr(each_object, &ex);
	if (trace) {
		dl_iterate_phdr(each_object, &en);
		dl_iterate_phdr(each_object, &aq);
	}
}

/* At stop: every cell as it was, last changed first. */
/* The cell's object is loaded still (then with its headers as they are). */
static int still_loaded(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct cell *c = arg;
	struct object o = { info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum };

	(void)size;
	if (o.base != c->o.base || !holds(&o, (uintptr_t)c->at))
		return 0;
	c->o = o;
	return 1;
}

void cov_got_remove(void)
{
	while (ncells > 0) {
		struct cell *c = &cells[--ncells];

		/* an object dlclose()d since is gone with its cells */
		if (dl_iterate_phdr(still_loaded, c))
			store(&c->o, c->at, c->was);
	}
}
