/*
 * tiny.c - a small shared object, built at fuzz time as a seed for the ELF
 * harness: a .dynsym, a .gnu.version with a default and a hidden version of
 * the same name (fuzz/tiny.map), and a "syscall; ret" in its code.
 */
int tiny(void);
int tiny_old(void);
int tiny_new(void);

__asm__(".symver tiny_old, dlopen@TINY_1");
__asm__(".symver tiny_new, dlopen@@TINY_2");

int tiny(void)
{
	return 1;
}

int tiny_old(void)
{
	return 2;
}

int tiny_new(void)
{
	return 3;
}

__asm__(".globl tiny_syscall\n"
	"tiny_syscall: syscall\n"
	"ret\n");
