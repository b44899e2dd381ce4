/*
 * elf.c - find a dynamic symbol, or a run of code, in an ELF64 object as it
 * is mapped in memory: the target's own libc and our payload, read through
 * a reader callback (process_vm_readv in inject.c).
 *
 * Reading what is mapped, not a file, needs exactly ptrace's permission:
 * /proc/PID/map_files needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN, and a
 * path under /proc/PID/root may name a file replaced since it was mapped
 * (a package upgrade) or nothing at all (our payload is a memfd).  Only
 * what the dynamic loader itself uses is read: the program headers, the
 * PT_DYNAMIC array, .dynsym, .dynstr, the GNU or SysV hash table and
 * .gnu.version; section headers are not mapped and are never needed.
 *
 * The memory is untrusted input: every count is bounded, every read goes
 * through the reader (which fails cleanly on an unmapped address), and
 * each address is checked against the object's own span.
 *
 * glibc's loader rewrites some d_ptr values of a writable PT_DYNAMIC in
 * place to absolute addresses (elf/get-dynamic-info.h, ADJUST_DYN_INFO);
 * musl does not.  An address inside the object's span is taken as
 * absolute, a smaller one as a vaddr to relocate.
 *
 * Versioned names (dlopen@GLIBC_2.2.5 next to dlopen@@GLIBC_2.34) share a
 * hash chain; we prefer the default version, whose .gnu.version entry
 * lacks the hidden bit 0x8000, as the static linker would.
 */
#include <elf.h>
#include <errno.h>
#include <string.h>
#include "elf.h"

#define MAX_PHDRS	64
#define MAX_DYN		512
#define MAX_CHAIN	(1u << 20)	/* symbols walked for one name */
#define CODE_CHUNK	65536

struct image {
	const struct elf_image *im;
	uint64_t bias;		/* load address minus vaddr */
	uint64_t lo, hi;	/* mapped span, absolute */
	uint64_t symtab, strtab, strsz, gnu_hash, sysv_hash, versym;
	Elf64_Phdr ph[MAX_PHDRS];
	unsigned nph;
};

static int rd(const struct image *m, uint64_t addr, void *buf, size_t len)
{
	if (addr < m->lo || addr > m->hi || len > m->hi - addr)
		return -ENOEXEC;
	return m->im->read(m->im->ctx, addr, buf, len);
}

/* The program headers, the bias and the span. */
static int load_headers(struct image *m)
{
	Elf64_Ehdr eh;
	uint64_t lo = UINT64_MAX, hi = 0;
	int r;

	if ((r = m->im->read(m->im->ctx, m->im->base, &eh, sizeof(eh))))
		return r;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || !eh.e_phnum ||
	    eh.e_phnum > MAX_PHDRS || eh.e_phoff > 65536)
		return -ENOEXEC;
	m->nph = eh.e_phnum;
	if ((r = m->im->read(m->im->ctx, m->im->base + eh.e_phoff, m->ph,
			     m->nph * sizeof(Elf64_Phdr))))
		return r;
	for (unsigned i = 0; i < m->nph; i++) {
		const Elf64_Phdr *p = &m->ph[i];

		if (p->p_type != PT_LOAD)
			continue;
		if (p->p_memsz > (1ULL << 40) || p->p_vaddr > (1ULL << 47))
			return -ENOEXEC;
		if (p->p_vaddr < lo)
			lo = p->p_vaddr;
		if (p->p_vaddr + p->p_memsz > hi)
			hi = p->p_vaddr + p->p_memsz;
	}
	if (lo == UINT64_MAX)
		return -ENOEXEC;
	lo &= ~4095ULL;
	m->bias = m->im->base - lo;
	m->lo = m->im->base;
	m->hi = m->bias + hi;
	return m->hi < m->lo ? -ENOEXEC : 0;
}

static uint64_t absolute(const struct image *m, uint64_t v)
{
	if (v >= m->lo && v < m->hi)
		return v;
	return v < m->hi - m->lo ? v + m->bias : 0;
}

/* DT_SYMTAB, DT_STRTAB, DT_STRSZ, the hash tables and DT_VERSYM. */
static int load_dynamic(struct image *m)
{
	const Elf64_Phdr *dyn = NULL;
	Elf64_Dyn d[32];
	uint64_t at, total;
	int r;

	for (unsigned i = 0; i < m->nph && !dyn; i++)
		if (m->ph[i].p_type == PT_DYNAMIC)
			dyn = &m->ph[i];
	if (!dyn)
		return -ENOEXEC;
	at = m->bias + dyn->p_vaddr;
	total = dyn->p_memsz / sizeof(Elf64_Dyn);
	for (unsigned n = 0; n < total && n < MAX_DYN; n += 32, at += sizeof(d)) {
		unsigned k = total - n < 32 ? total - n : 32;

		if ((r = rd(m, at, d, k * sizeof(d[0]))))
			return r;
		for (unsigned i = 0; i < k; i++) {
			uint64_t v = d[i].d_un.d_ptr;

			switch (d[i].d_tag) {
			case DT_NULL:
				return m->symtab && m->strtab ? 0 : -ENOEXEC;
			case DT_SYMTAB: m->symtab = absolute(m, v); break;
			case DT_STRTAB: m->strtab = absolute(m, v); break;
			case DT_STRSZ: m->strsz = v; break;
			case DT_GNU_HASH: m->gnu_hash = absolute(m, v); break;
			case DT_HASH: m->sysv_hash = absolute(m, v); break;
			case DT_VERSYM: m->versym = absolute(m, v); break;
			}
		}
	}
	return -ENOEXEC;
}

/*
 * Symbol idx, if it is a definition named want: 0 no, 1 yes (hidden
 * version), 2 yes (default version); -errno if unreadable.
 */
static int match(const struct image *m, uint32_t idx, const char *want,
		 uint64_t *value)
{
	char name[128];
	size_t wl = strlen(want) + 1;
	uint16_t ver = 0;
	Elf64_Sym s;
	int r;

	if ((r = rd(m, m->symtab + (uint64_t)idx * sizeof(s), &s, sizeof(s))))
		return r;
	if (s.st_shndx == SHN_UNDEF || !s.st_value || s.st_name >= m->strsz ||
	    wl > sizeof(name) || wl > m->strsz - s.st_name ||
	    ELF64_ST_TYPE(s.st_info) == STT_GNU_IFUNC)
		return 0;
	if ((r = rd(m, m->strtab + s.st_name, name, wl)))
		return r;
	if (memcmp(name, want, wl))
		return 0;
	if (m->versym && rd(m, m->versym + (uint64_t)idx * 2, &ver, sizeof(ver)))
		ver = 0;
	*value = m->bias + s.st_value;
	return ver & 0x8000 ? 1 : 2;
}

/* Keep the best candidate: 0 go on, 1 done (a default version). */
static int consider(int r, uint64_t v, int *best, uint64_t *out)
{
	if (r > *best) {
		*best = r;
		*out = v;
	}
	return r == 2;
}

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

/* The GNU hash table (binutils' --hash-style=gnu, the default today). */
static int lookup_gnu(const struct image *m, const char *sym, int *best,
		      uint64_t *out)
{
	uint32_t hdr[4], h = gnu_hash(sym), idx, ch;
	uint64_t buckets, chain, v = 0;
	int r;

	if ((r = rd(m, m->gnu_hash, hdr, sizeof(hdr))))
		return r;
	if (!hdr[0] || hdr[2] > (1u << 24))
		return -ENOEXEC;
	buckets = m->gnu_hash + 16 + (uint64_t)hdr[2] * 8;
	chain = buckets + (uint64_t)hdr[0] * 4;
	if ((r = rd(m, buckets + (uint64_t)(h % hdr[0]) * 4, &idx, sizeof(idx))))
		return r;
	if (idx < hdr[1])
		return 0;
	for (unsigned n = 0; n < MAX_CHAIN; n++, idx++) {
		if ((r = rd(m, chain + (uint64_t)(idx - hdr[1]) * 4, &ch, sizeof(ch))))
			return r;
		if ((ch | 1) == (h | 1)) {
			if ((r = match(m, idx, sym, &v)) < 0)
				return r;
			if (consider(r, v, best, out))
				return 0;
		}
		if (ch & 1)
			return 0;
	}
	return -ENOEXEC;
}

static uint32_t sysv_hash(const char *s)
{
	uint32_t h = 0, g;

	while (*s) {
		h = (h << 4) + (unsigned char)*s++;
		g = h & 0xf0000000u;
		h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

/* The SysV hash table (older objects, musl's default). */
static int lookup_sysv(const struct image *m, const char *sym, int *best,
		       uint64_t *out)
{
	uint32_t hdr[2], idx;
	uint64_t v = 0;
	int r;

	if ((r = rd(m, m->sysv_hash, hdr, sizeof(hdr))))
		return r;
	if (!hdr[0] || !hdr[1] || hdr[1] > MAX_CHAIN)
		return -ENOEXEC;
	if ((r = rd(m, m->sysv_hash + 8 + (uint64_t)(sysv_hash(sym) % hdr[0]) * 4,
		    &idx, sizeof(idx))))
		return r;
	for (unsigned n = 0; idx && idx < hdr[1] && n < MAX_CHAIN; n++) {
		if ((r = match(m, idx, sym, &v)) < 0)
			return r;
		if (consider(r, v, best, out))
			return 0;
		if ((r = rd(m, m->sysv_hash + 8 + (uint64_t)hdr[0] * 4 + (uint64_t)idx * 4,
			    &idx, sizeof(idx))))
			return r;
	}
	return 0;
}

int elf_image_symbol(const struct elf_image *im, const char *sym, uint64_t *addr)
{
	struct image m = { .im = im };
	int r, best = 0;

	if ((r = load_headers(&m)) || (r = load_dynamic(&m)))
		return r;
	if (m.gnu_hash)
		r = lookup_gnu(&m, sym, &best, addr);
	else if (m.sysv_hash)
		r = lookup_sysv(&m, sym, &best, addr);
	else
		r = -ENOEXEC;
	return r ? r : best ? 0 : -ENOENT;
}

/* The first occurrence of code in one executable segment, read in chunks
 * that overlap by clen - 1 bytes so no occurrence straddles two. */
static int find_in_segment(const struct image *m, const Elf64_Phdr *p,
			   const unsigned char *code, size_t clen, uint64_t *addr)
{
	static unsigned char buf[CODE_CHUNK];
	uint64_t at = m->bias + p->p_vaddr, end = at + p->p_memsz;
	const unsigned char *hit;

	while (at < end && end - at >= clen) {
		size_t n = end - at < sizeof(buf) ? end - at : sizeof(buf);
		int r = rd(m, at, buf, n);

		if (r)
			return r;
		if ((hit = memmem(buf, n, code, clen))) {
			*addr = at + (uint64_t)(hit - buf);
			return 0;
		}
		if (n < sizeof(buf))
			break;
		at += n - (clen - 1);
	}
	return -ENOENT;
}

int elf_image_find_code(const struct elf_image *im, const unsigned char *code,
			size_t clen, uint64_t *addr)
{
	struct image m = { .im = im };
	int r;

	if (!clen || clen > 256)
		return -EINVAL;
	if ((r = load_headers(&m)))
		return r;
	for (unsigned i = 0; i < m.nph; i++) {
		if (m.ph[i].p_type != PT_LOAD || !(m.ph[i].p_flags & PF_X))
			continue;
		r = find_in_segment(&m, &m.ph[i], code, clen, addr);
		if (r != -ENOENT)
			return r;
	}
	return -ENOENT;
}
