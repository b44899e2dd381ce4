/*
 * exithook.c - the final snapshot of a process that ends with os._exit:
 * multiprocessing's and Celery's (billiard's) pool workers do, and no
 * atexit hook runs then (os__exit_impl calls _exit(2) at once).
 *
 * We point the interpreter's own GOT cells for _exit (libpython's, or the
 * executable's when libpython is linked into it) at exit_hook.  Called by
 * Python in the very process that is collecting, with the GIL held, it
 * writes the final snapshot (cov_on_exit) and then calls the real _exit;
 * any other caller goes straight on: a child of fork or vfork that exits
 * (subprocess's, on a failed exec: another pid, and a vfork child shares
 * our memory, so it must touch nothing), C code without the GIL.  Nothing
 * a Python program can see changes: os._exit is the same object, and only
 * its exit takes the few milliseconds of the write.
 *
 * The cells are data, in the object's relocation targets: every PLT slot
 * whose relocation names _exit (generic ELF: DT_JMPREL lists only such
 * slots), and any other cell naming _exit that holds its address (a
 * GLOB_DAT of -fno-plt code).  A cell in the object's PT_GNU_RELRO range is
 * read-only after loading: made writable for the store, then read-only
 * again.  stop restores every cell.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "payload.h"

#define MAX_CELLS 8

struct cell {
	uintptr_t *at;
	uintptr_t was;
};

static struct cell cells[MAX_CELLS];
static int ncells;

static void exit_hook(int status)
{
	if (cov_state.pid == getpid() && !cov_state.unhooked &&
	    cov_py.GILState_Check && cov_py.GILState_Check())
		cov_on_exit();
	_exit(status);
}

/* The object that holds the interpreter: its load address and headers. */
struct object {
	uintptr_t base;
	const ElfW(Phdr) *ph;
	int nph;
	const char *name;
};

static int same_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct object *o = arg;

	(void)size;
	if (info->dlpi_addr != o->base || strcmp(info->dlpi_name, o->name))
		return 0;
	o->ph = info->dlpi_phdr;
	o->nph = info->dlpi_phnum;
	return 1;
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

/* Every relocation of table (n bytes) that names _exit; plt: any of them. */
static void find_cells(const struct object *o, const ElfW(Rela) *r, size_t n,
		       const ElfW(Sym) *syms, const char *strs, int plt)
{
	for (size_t i = 0; i < n / sizeof(*r) && ncells < MAX_CELLS; i++) {
		const ElfW(Sym) *s = &syms[ELF64_R_SYM(r[i].r_info)];
		uintptr_t *at = (uintptr_t *)(o->base + r[i].r_offset);

		if (!ELF64_R_SYM(r[i].r_info) || strcmp(strs + s->st_name, "_exit"))
			continue;
		if (!plt && *at != (uintptr_t)&_exit)
			continue;
		cells[ncells].at = at;
		cells[ncells].was = *at;
		ncells++;
	}
}

static void find_all(const struct object *o, const ElfW(Dyn) *d)
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
		find_cells(o, jmprel, njmp, syms, strs, 1);
	if (rela)
		find_cells(o, rela, nrela, syms, strs, 0);
}

/* Called with the GIL held at start; a second start keeps the cells. */
void cov_exithook_install(void)
{
	struct object o = { 0 };
	struct link_map *lm = NULL;
	Dl_info info;

	if (ncells || !dladdr1((void *)cov_py.GetVersion, &info, (void **)&lm,
			       RTLD_DL_LINKMAP) || !lm)
		return;
	o.base = lm->l_addr;
	o.name = lm->l_name;
	if (!dl_iterate_phdr(same_object, &o))
		return;
	find_all(&o, lm->l_ld);
	for (int i = 0; i < ncells; i++)
		if (store(&o, cells[i].at, (uintptr_t)exit_hook))
			cells[i].at = NULL;	/* left as it was */
}

/* At stop: every cell as it was. */
void cov_exithook_remove(void)
{
	struct object o = { 0 };
	struct link_map *lm = NULL;
	Dl_info info;

	if (!ncells || !dladdr1((void *)cov_py.GetVersion, &info, (void **)&lm,
				RTLD_DL_LINKMAP) || !lm)
		return;
	o.base = lm->l_addr;
	o.name = lm->l_name;
	dl_iterate_phdr(same_object, &o);
	for (int i = 0; i < ncells; i++)
		if (cells[i].at)
			store(&o, cells[i].at, cells[i].was);
	ncells = 0;
}
