/*
 * signals.c - the dump and stop signal handlers.
 *
 * A handler only writes one request byte to the payload thread's pipe.  With
 * --chain it then calls the handler that was installed before ours (never
 * SIG_DFL or SIG_IGN), so a server keeps its own use of the signal; CPython's
 * own C handler (Modules/signalmodule.c, signal_handler) is async-signal-safe
 * and only trips a flag, so chaining to it is safe.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include "payload.h"

static volatile sig_atomic_t wake = -1;
static struct sigaction old_dump, old_stop;
static int installed;

/*
 * Async-signal-safe: write(2) to a non-blocking pipe, and the previous
 * handler, which was itself installed as a signal handler.  errno is saved
 * and restored.  A full pipe drops the byte: a request is pending already
 * and the payload thread coalesces them.
 */
static void on_signal(int sig, siginfo_t *info, void *uctx)
{
	const struct sigaction *old = sig == cov_cfg.stop_sig ? &old_stop : &old_dump;
	char c = sig == cov_cfg.stop_sig ? COV_REQ_STOP : COV_REQ_DUMP;
	int saved = errno;

	if (write(wake, &c, 1) < 0) {
		/* full or closed: nothing to do in a handler */
	}
	errno = saved;
	if (!cov_cfg.chain)
		return;
	if (old->sa_flags & SA_SIGINFO) {
		if (old->sa_sigaction)
			old->sa_sigaction(sig, info, uctx);
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
	}
}

void cov_signals_set_wake(int fd)
{
	wake = fd;
}

int cov_signals_install(int fd)
{
	struct sigaction sa;

	wake = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_RESTART | SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(cov_cfg.dump_sig, &sa, &old_dump))
		return -1;
	if (sigaction(cov_cfg.stop_sig, &sa, &old_stop)) {
		sigaction(cov_cfg.dump_sig, &old_dump, NULL);
		return -1;
	}
	installed = 1;
	return 0;
}

static int ours(int sig)
{
	struct sigaction cur;

	return sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
	       cur.sa_sigaction == on_signal;
}

/* How many of our two handlers the program has replaced since. */
int cov_signals_lost(void)
{
	if (!installed)
		return 0;
	return !ours(cov_cfg.dump_sig) + !ours(cov_cfg.stop_sig);
}

/* Put back the previous handlers, unless the program replaced ours since. */
void cov_signals_restore(void)
{
	if (!installed)
		return;
	if (ours(cov_cfg.dump_sig))
		sigaction(cov_cfg.dump_sig, &old_dump, NULL);
	if (ours(cov_cfg.stop_sig))
		sigaction(cov_cfg.stop_sig, &old_stop, NULL);
	installed = 0;
}
