/*
 * elf_lookup.c - libFuzzer harness for inject/elf.c: the bytes of a file
 * mapped in the target, read through /proc/PID/map_files.
 *
 * elf_lookup_mem() refuses a buffer that is not 8-byte aligned (the ELF
 * structures are read in place), so the input is copied into one first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../inject/elf.h"

/* Names from the seeds: libc's, and fuzz/tiny.c's (one of them versioned). */
static const char *const syms[] = { "close", "dlopen", "memfd_create", "tiny" };

/* "syscall; ret", what an injector looks for in an executable segment. */
static const unsigned char code[] = { 0x0f, 0x05, 0xc3 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf = aligned_alloc(8, (size + 7) & ~(size_t)7);
	struct elf_sym s;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (elf_lookup_mem(buf, size, syms[i], &s) == 0 &&
		    (s.load_vaddr & 4095))
			abort();
	if (elf_find_code_mem(buf, size, code, sizeof(code), &s) == 0 &&
	    (s.load_vaddr & 4095))
		abort();
	free(buf);
	return 0;
}
