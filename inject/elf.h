/* elf.h - dynamic symbol lookup in ELF64 files (inject/elf.c). */
#ifndef COVINJECT_ELF_H
#define COVINJECT_ELF_H

#include <stddef.h>
#include <stdint.h>

struct elf_sym {
	uint64_t value;		/* st_value */
	uint64_t load_vaddr;	/* lowest PT_LOAD vaddr, page-aligned */
};

/* 0, -ENOENT (no such symbol) or -ENOEXEC (not a usable ELF64). */
int elf_lookup_mem(const unsigned char *buf, size_t len, const char *sym,
		   struct elf_sym *out) __attribute__((warn_unused_result));
int elf_lookup_file(const char *path, const char *sym, struct elf_sym *out)
	__attribute__((warn_unused_result));

/* The first occurrence of code in an executable segment: value = its vaddr. */
int elf_find_code_mem(const unsigned char *buf, size_t len,
		      const unsigned char *code, size_t clen, struct elf_sym *out)
	__attribute__((warn_unused_result));
int elf_find_code_file(const char *path, const unsigned char *code, size_t clen,
		       struct elf_sym *out) __attribute__((warn_unused_result));

#endif
