/*
 * access.c - why the kernel refused us another process, and what to do:
 * the refusals ptrace(2) documents ("Ptrace access mode checking"), in the
 * order the kernel applies them, from what /proc tells without ptrace.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"

#define CAP_SYS_PTRACE_BIT (1ULL << 19)

static int yama_scope(void)
{
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	int scope = 0;

	if (f) {
		if (fscanf(f, "%d", &scope) != 1)
			scope = 0;
		fclose(f);
	}
	return scope;
}

static int same_user_ns(pid_t pid)
{
	char fn[64], a[64] = "", b[64] = "";

	snprintf(fn, sizeof(fn), "/proc/%d/ns/user", (int)pid);
	if (readlink(fn, a, sizeof(a) - 1) < 0 ||
	    readlink("/proc/self/ns/user", b, sizeof(b) - 1) < 0)
		return 1;	/* cannot tell: say nothing of it */
	return !strcmp(a, b);
}

/* The hint after "Operation not permitted", for the target st. */
void cli_access_hint(pid_t pid, const struct proc_status *st, char *buf, size_t len)
{
	struct proc_status me;
	int scope = yama_scope(), cap;

	if (cli_proc_status(getpid(), &me))
		memset(&me, 0, sizeof(me));
	cap = !!(me.capeff & CAP_SYS_PTRACE_BIT);
	if (st->tracer)
		snprintf(buf, len, "it is already traced by pid %d: detach that "
			 "debugger or tracer first", (int)st->tracer);
	else if (scope >= 3)
		snprintf(buf, len, "kernel.yama.ptrace_scope is 3: ptrace is disabled "
			 "on this machine until it reboots with a lower setting");
	else if (!cap && geteuid() == 0)
		snprintf(buf, len, "covinject runs as root without CAP_SYS_PTRACE, as "
			 "in a container: add it with docker run --cap-add SYS_PTRACE, "
			 "or in Kubernetes securityContext.capabilities.add "
			 "[\"SYS_PTRACE\"] or kubectl debug --profile=general");
	else if (!cap && scope == 2)
		snprintf(buf, len, "kernel.yama.ptrace_scope is 2: only a caller with "
			 "CAP_SYS_PTRACE may attach (run as root)");
	else if (!cap && geteuid() != st->euid)
		snprintf(buf, len, "it runs as uid %u and covinject as uid %u: run as "
			 "that user, as root, or with CAP_SYS_PTRACE",
			 (unsigned)st->euid, (unsigned)geteuid());
	else if (!cap && scope == 1)
		snprintf(buf, len, "kernel.yama.ptrace_scope is 1: only a parent may "
			 "attach to its child; run as root or with CAP_SYS_PTRACE, or "
			 "set kernel.yama.ptrace_scope=0");
	else if (!same_user_ns(pid))
		snprintf(buf, len, "it is in a user namespace where covinject has no "
			 "privilege: run covinject from the namespace that created it "
			 "(the host), or inside its own");
	else if (me.seccomp == 2)
		snprintf(buf, len, "covinject runs under a seccomp filter that may "
			 "forbid ptrace (Docker's default profile allows it only with "
			 "--cap-add SYS_PTRACE)");
	else
		snprintf(buf, len, "the process may hold capabilities covinject lacks: "
			 "run as root or with CAP_SYS_PTRACE%s", me.nonewprivs ?
			 "; no_new_privs is set, so file capabilities on covinject "
			 "do not apply" : "");
}
