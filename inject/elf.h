/* elf.h - dynamic symbols and code in a mapped ELF64 object (inject/elf.c). */
#ifndef COVINJECT_ELF_H
#define COVINJECT_ELF_H

#include <stddef.h>
#include <stdint.h>

/* An object as mapped: its ELF header at base, read through read(). */
struct elf_image {
	int (*read)(void *ctx, uint64_t addr, void *buf, size_t len); /* 0, -errno */
	void *ctx;
	uint64_t base;		/* the mapping at file offset 0 */
};

/* The address of sym's definition: 0, -ENOENT (no such symbol),
 * -ENOEXEC (not a usable ELF64 image) or the reader's -errno. */
int elf_image_symbol(const struct elf_image *im, const char *sym, uint64_t *addr)
	__attribute__((warn_unused_result));

/* The address of the first occurrence of code in an executable segment. */
int elf_image_find_code(const struct elf_image *im, const unsigned char *code,
			size_t clen, uint64_t *addr) __attribute__((warn_unused_result));

#endif
