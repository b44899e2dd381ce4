/*
 * elf.c - find a dynamic symbol in an ELF64 shared object, from its bytes.
 *
 * We read the target's own mapped file (through /proc/PID/map_files), never
 * our own libc: the target may be in another mount namespace or have an
 * older or newer libc.  The bytes are untrusted input: every offset is
 * checked against the buffer before use.
 *
 * Versioned names (dlopen@GLIBC_2.2.5 next to dlopen@@GLIBC_2.34) both
 * appear in .dynsym; we prefer the default version, whose .gnu.version entry
 * lacks the hidden bit 0x8000, as the static linker would.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "elf.h"

static int in_range(size_t len, uint64_t off, uint64_t size)
{
	return off <= len && size <= len - off;
}

static const Elf64_Shdr *section(const unsigned char *buf, size_t len,
				 const Elf64_Ehdr *eh, unsigned idx)
{
	uint64_t off = eh->e_shoff + (uint64_t)idx * sizeof(Elf64_Shdr);

	if (idx >= eh->e_shnum || !in_range(len, off, sizeof(Elf64_Shdr)))
		return NULL;
	return (const Elf64_Shdr *)(buf + off);
}

static int check_header(const unsigned char *buf, size_t len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;

	if (((uintptr_t)buf % 8) != 0 || len < sizeof(*eh) ||
	    memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff % 8 != 0)
		return -ENOEXEC;
	return 0;
}

/* The lowest PT_LOAD p_vaddr, page-aligned: what the load base is relative to. */
static uint64_t first_load(const unsigned char *buf, size_t len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
	uint64_t lowest = UINT64_MAX;

	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff % 8)
		return 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		uint64_t off = eh->e_phoff + (uint64_t)i * sizeof(Elf64_Phdr);
		const Elf64_Phdr *ph;

		if (!in_range(len, off, sizeof(*ph)))
			return 0;
		ph = (const Elf64_Phdr *)(buf + off);
		if (ph->p_type == PT_LOAD && ph->p_vaddr < lowest)
			lowest = ph->p_vaddr;
	}
	return lowest == UINT64_MAX ? 0 : lowest & ~4095ULL;
}

static int name_is(const unsigned char *buf, size_t len,
		   const Elf64_Shdr *str, uint32_t name, const char *want)
{
	size_t wl = strlen(want);

	if (name >= str->sh_size || !in_range(len, str->sh_offset + name, wl + 1))
		return 0;
	return memcmp(buf + str->sh_offset + name, want, wl + 1) == 0;
}

static const Elf64_Shdr *find_versym(const unsigned char *buf, size_t len,
				     const Elf64_Ehdr *eh)
{
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *sh = section(buf, len, eh, i);

		if (sh && sh->sh_type == SHT_GNU_versym &&
		    in_range(len, sh->sh_offset, sh->sh_size) &&
		    sh->sh_offset % 2 == 0)
			return sh;
	}
	return NULL;
}

int elf_lookup_mem(const unsigned char *buf, size_t len, const char *sym,
		   struct elf_sym *out)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;
	const Elf64_Shdr *ds = NULL, *str, *ver;
	uint64_t n, found = 0;
	int have = 0;

	if (check_header(buf, len))
		return -ENOEXEC;
	for (unsigned i = 0; i < eh->e_shnum && !ds; i++) {
		const Elf64_Shdr *sh = section(buf, len, eh, i);

		if (sh && sh->sh_type == SHT_DYNSYM)
			ds = sh;
	}
	if (!ds || !in_range(len, ds->sh_offset, ds->sh_size) ||
	    ds->sh_offset % 8 || !(str = section(buf, len, eh, ds->sh_link)) ||
	    !in_range(len, str->sh_offset, str->sh_size))
		return -ENOEXEC;
	ver = find_versym(buf, len, eh);
	n = ds->sh_size / sizeof(Elf64_Sym);
	for (uint64_t i = 0; i < n; i++) {
		const Elf64_Sym *s = (const Elf64_Sym *)(buf + ds->sh_offset) + i;
		int hidden = 0;

		if (s->st_shndx == SHN_UNDEF || s->st_value == 0 ||
		    !name_is(buf, len, str, s->st_name, sym))
			continue;
		if (ver && (i + 1) * 2 <= ver->sh_size)
			hidden = ((const uint16_t *)(buf + ver->sh_offset))[i] & 0x8000;
		if (!have || !hidden) {
			found = s->st_value;
			have = 1;
			if (!hidden)
				break;
		}
	}
	if (!have)
		return -ENOENT;
	out->value = found;
	out->load_vaddr = first_load(buf, len);
	return 0;
}

int elf_find_code_mem(const unsigned char *buf, size_t len,
		      const unsigned char *code, size_t clen, struct elf_sym *out)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)buf;

	if (check_header(buf, len) || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff % 8 || !clen)
		return -ENOEXEC;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		uint64_t off = eh->e_phoff + (uint64_t)i * sizeof(Elf64_Phdr);
		const Elf64_Phdr *ph;
		const unsigned char *hit;

		if (!in_range(len, off, sizeof(*ph)))
			return -ENOEXEC;
		ph = (const Elf64_Phdr *)(buf + off);
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) ||
		    !in_range(len, ph->p_offset, ph->p_filesz))
			continue;
		hit = memmem(buf + ph->p_offset, ph->p_filesz, code, clen);
		if (hit) {
			out->value = ph->p_vaddr + (uint64_t)(hit - buf - ph->p_offset);
			out->load_vaddr = first_load(buf, len);
			return 0;
		}
	}
	return -ENOENT;
}

/* Map path read-only and run fn on its bytes. */
static int with_file(const char *path, int (*fn)(const unsigned char *, size_t,
						 const void *, size_t, struct elf_sym *),
		     const void *what, size_t wlen, struct elf_sym *out)
{
	struct stat st;
	void *map;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (st.st_size <= 0) {
		close(fd);
		return -ENOEXEC;
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	close(fd);
	r = fn(map, st.st_size, what, wlen, out);
	munmap(map, st.st_size);
	return r;
}

static int lookup_adapter(const unsigned char *buf, size_t len, const void *sym,
			  size_t unused, struct elf_sym *out)
{
	(void)unused;
	return elf_lookup_mem(buf, len, sym, out);
}

static int code_adapter(const unsigned char *buf, size_t len, const void *code,
			size_t clen, struct elf_sym *out)
{
	return elf_find_code_mem(buf, len, code, clen, out);
}

int elf_lookup_file(const char *path, const char *sym, struct elf_sym *out)
{
	return with_file(path, lookup_adapter, sym, 0, out);
}

int elf_find_code_file(const char *path, const unsigned char *code, size_t clen,
		       struct elf_sym *out)
{
	return with_file(path, code_adapter, code, clen, out);
}
