/*
 * embed.c - a program that loads libpython without starting an interpreter
 * in itself, as Apache's parent process does with mod_wsgi, and runs a
 * child (argv[2...], a Python target) that does.  argv[1]: libpython.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	pid_t pid;

	if (argc < 3 || !dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL)) {
		fprintf(stderr, "embed: %s\n", argc < 3 ? "usage: embed LIBPYTHON CMD..." :
			dlerror());
		return 1;
	}
	if ((pid = fork()) == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	return 0;
}
