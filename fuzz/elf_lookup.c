/*
 * elf_lookup.c - libFuzzer harness for inject/elf.c: an object as mapped in
 * the target, read through process_vm_readv.  The input stands for the
 * memory from the object's header on; a read past its end fails as an
 * unmapped address does.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../inject/elf.h"

#define BASE 0x7f0000000000ULL

struct mem {
	const uint8_t *p;
	size_t len;
};

/* Names from the seeds: libc's, and fuzz/tiny.c's (one of them versioned). */
static const char *const syms[] = { "close", "dlopen", "memfd_create", "tiny" };

/* "syscall; ret", what an injector looks for in an executable segment. */
static const unsigned char code[] = { 0x0f, 0x05, 0xc3 };

static int read_mem(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct mem *m = ctx;

	if (addr < BASE || addr - BASE > m->len || len > m->len - (addr - BASE))
		return -EFAULT;
	memcpy(buf, m->p + (addr - BASE), len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size };
	struct elf_image im = { read_mem, &m, BASE };
	uint64_t a;

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (elf_image_symbol(&im, syms[i], &a) == 0 && a < BASE)
			abort();
	if (elf_image_find_code(&im, code, sizeof(code), &a) == 0 &&
	    (a < BASE || memcmp(data + (a - BASE), code, sizeof(code))))
		abort();
	return 0;
}
