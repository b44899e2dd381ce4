/*
 * payload.c - the entry point the injector calls, the payload's own thread,
 * its signal handlers and the status block.
 *
 * cov_start runs in a borrowed thread of the host and must give it back
 * fast: it copies the configuration and starts our thread, nothing else.
 * Our thread (all signals blocked) waits for the interpreter, takes the GIL
 * like any other thread, installs the collector and the handlers, then
 * sleeps on a pipe.  The handlers only write a byte to that pipe.
 *
 * Exported: cov_start and cov_state; everything else is hidden
 * (-fvisibility=hidden), so we add nothing to the host's symbol namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "collect.h"
#include "config.h"
#include "cov_state.h"
#include "pyapi.h"
#include "store.h"
#include "writer.h"

#define EXPORT __attribute__((visibility("default")))
#define SWEEP_MS 1000
#define MAX_SOURCES 64

EXPORT int cov_start(const char *config);

EXPORT struct cov_state cov_state = {
	.magic = COV_STATE_MAGIC,
	.abi = COV_STATE_ABI,
	.tool_id = -1,
};

static char cfg_text[COV_CONFIG_MAX];	/* copied by cov_start */
static struct cov_config cfg;
static struct pyapi py;
static int wake[2] = { -1, -1 };	/* handlers -> our thread */
static struct sigaction old_dump, old_stop;
static int handlers_installed;
static char stdlib_dir[PATH_MAX];
static const char *sources[MAX_SOURCES + 1];
static struct cov_scope scope = { stdlib_dir, sources };
static char final_name[COV_PATH_MAX], tmp_name[128];

/* ---- the status block -------------------------------------------------- */

static void state_begin(void)
{
	__atomic_add_fetch(&cov_state.seq, 1, __ATOMIC_RELEASE);
}

static void state_end(void)
{
	__atomic_add_fetch(&cov_state.seq, 1, __ATOMIC_RELEASE);
}

static void set_phase(enum cov_phase p)
{
	state_begin();
	cov_state.phase = p;
	state_end();
}

static void set_error(const char *fmt, ...)
{
	va_list ap;

	state_begin();
	va_start(ap, fmt);
	vsnprintf(cov_state.error, sizeof(cov_state.error), fmt, ap);
	va_end(ap);
	state_end();
}

/* ---- signals ----------------------------------------------------------- */

/*
 * Async-signal-safe: only write(2) to a non-blocking pipe, with errno saved
 * and restored.  A full pipe drops the byte, which is what we want: the
 * thread coalesces requests anyway.
 */
static void on_signal(int sig)
{
	int saved = errno;
	char c = sig == cfg.stop_sig ? 'S' : 'D';

	if (write(wake[1], &c, 1) < 0) {
		/* full: a wake-up is pending already */
	}
	errno = saved;
}

static int install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(cfg.dump_sig, &sa, &old_dump))
		return -1;
	if (sigaction(cfg.stop_sig, &sa, &old_stop)) {
		sigaction(cfg.dump_sig, &old_dump, NULL);
		return -1;
	}
	handlers_installed = 1;
	return 0;
}

/* Put back the previous handler, unless the program replaced ours since. */
static void restore_one(int sig, const struct sigaction *old)
{
	struct sigaction cur;

	if (sigaction(sig, NULL, &cur) == 0 && cur.sa_handler == on_signal)
		sigaction(sig, old, NULL);
}

static void restore_handlers(void)
{
	if (!handlers_installed)
		return;
	restore_one(cfg.dump_sig, &old_dump);
	restore_one(cfg.stop_sig, &old_stop);
	handlers_installed = 0;
}

/* ---- snapshots --------------------------------------------------------- */

static void make_names(void)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[12];
	char host[256] = "localhost", r1[7], r2[7];

	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);

		memcpy(rnd, &t, 8);
		memcpy(rnd + 8, &t, 4);
	}
	for (int i = 0; i < 6; i++) {
		r1[i] = alnum[rnd[i] % 36];
		r2[i] = alnum[rnd[6 + i] % 36];
	}
	r1[6] = r2[6] = 0;
	gethostname(host, sizeof(host) - 1);
	state_begin();
	snprintf(final_name, sizeof(final_name), "%s/.coverage.%s.pid%d.X%sx",
		 cfg.out_dir, host, (int)getpid(), r1);
	snprintf(cov_state.data_file, sizeof(cov_state.data_file), "%s", final_name);
	state_end();
	snprintf(tmp_name, sizeof(tmp_name), ".covinject-tmp.pid%d.%s",
		 (int)getpid(), r2);
}

static void update_counts(void)
{
	uint32_t f, l;

	cov_store_counts(&f, &l);
	state_begin();
	cov_state.files = f;
	cov_state.lines = l;
	state_end();
}

/* Copy under the GIL (microseconds), write without it. */
static void dump(void)
{
	struct cov_snap snap;
	struct timespec ts;
	char err[COV_ERR_MAX] = "";
	int gil, rc;

	gil = py.GILState_Ensure();
	rc = cov_store_snapshot(&snap);
	update_counts();
	py.GILState_Release(gil);
	if (rc) {
		snprintf(err, sizeof(err), "snapshot: out of memory");
	} else {
		rc = cov_write_snapshot(&snap, cfg.out_dir, final_name, tmp_name,
					cfg.argv, err, sizeof(err));
		cov_snap_free(&snap);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	state_begin();
	if (rc) {
		cov_state.dump_errors++;
		snprintf(cov_state.error, sizeof(cov_state.error), "%s", err);
	} else {
		cov_state.dumps++;
		cov_state.last_dump_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		cov_state.error[0] = 0;
	}
	state_end();
}

/* ---- the payload thread ------------------------------------------------ */

static void scope_init(void)
{
	PyObject *name = py.Unicode_FromString("os"), *os, *file;
	const char *s;
	char *slash;

	stdlib_dir[0] = 0;
	os = name ? py.Import_GetModule(name) : NULL;
	file = os ? py.Object_GetAttrString(os, "__file__") : NULL;
	s = file ? py.Unicode_AsUTF8AndSize(file, NULL) : NULL;
	if (s && realpath(s, stdlib_dir) && (slash = strrchr(stdlib_dir, '/')))
		*slash = 0;
	py.Err_Clear();
	if (file)
		py.DecRef(file);
	if (os)
		py.DecRef(os);
	if (name)
		py.DecRef(name);
	for (int i = 0; i < cfg.nsources && i < MAX_SOURCES; i++)
		sources[i] = cfg.sources[i];
	sources[cfg.nsources < MAX_SOURCES ? cfg.nsources : MAX_SOURCES] = NULL;
	cov_store_init(&scope);
}

static int wait_interpreter(void)
{
	for (int i = 0; i < 3000; i++) {
		if (py.IsInitialized())
			return 0;
		usleep(10000);
	}
	return -1;
}

static int setup(void)
{
	char err[COV_ERR_MAX] = "";
	struct cov_collect_info info;
	int gil, rc;

	if (cov_pyapi_load(&py, err, sizeof(err))) {
		set_error("Python C-API: %s", err);
		return -1;
	}
	if (py.hex < 0x03090000 || py.hex >= 0x030e0000) {
		set_error("unsupported Python %s (covinject supports 3.9-3.13)",
			  py.GetVersion());
		return -1;
	}
	if (wait_interpreter()) {
		set_error("the interpreter did not finish initialising");
		return -1;
	}
	gil = py.GILState_Ensure();
	scope_init();
	rc = cov_collect_start(&py, &info, err, sizeof(err));
	if (rc) {
		cov_collect_stop();
		cov_collect_release();
	}
	py.GILState_Release(gil);
	if (rc) {
		set_error("start collecting: %s", err);
		return -1;
	}
	state_begin();
	cov_state.py_hex = py.hex;
	cov_state.tool_id = info.tool_id;
	cov_state.threads = info.threads;
	cov_state.skipped_threads = info.skipped;
	state_end();
	return 0;
}

static void teardown(void)
{
	int gil = py.GILState_Ensure();

	cov_collect_stop();
	cov_collect_release();
	py.GILState_Release(gil);
}

static void sweep(void)
{
	int gil = py.GILState_Ensure();

	cov_collect_sweep();
	update_counts();
	py.GILState_Release(gil);
}

/* Wait for a request; returns 'D', 'S' or 0 on timeout.  Coalesces. */
static int next_request(int timeout_ms)
{
	struct pollfd p = { wake[0], POLLIN, 0 };
	char buf[256];
	int req = 0;
	ssize_t n;

	if (poll(&p, 1, timeout_ms) <= 0)
		return 0;
	while ((n = read(wake[0], buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == 'S' || !req)
				req = buf[i];
	return req;
}

static void *payload_main(void *arg)
{
	sigset_t all;
	int req;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (setup()) {
		set_phase(COV_FAILED);
		return NULL;
	}
	if (install_handlers()) {
		set_error("install signal handlers: %s", strerror(errno));
		teardown();
		set_phase(COV_FAILED);
		return NULL;
	}
	set_phase(COV_COLLECTING);
	for (;;) {
		req = next_request(SWEEP_MS);
		if (req == 'D') {
			state_begin();
			cov_state.dump_requests++;
			state_end();
			dump();
		} else if (req == 'S') {
			break;
		} else {
			sweep();
		}
	}
	set_phase(COV_STOPPING);
	restore_handlers();
	dump();
	teardown();
	set_phase(COV_STOPPED);
	return NULL;
}

/*
 * Called by the injector in a borrowed thread (all signals blocked by the
 * injector).  Returns 0 or a positive errno.  Must not wait for anything:
 * no GIL, no Python, just a copy and a pthread_create.
 */
EXPORT int cov_start(const char *config)
{
	pthread_attr_t attr;
	pthread_t t;
	char drain[64];
	uint32_t phase = cov_state.phase;
	int rc;

	if (phase == COV_STARTING || phase == COV_COLLECTING || phase == COV_STOPPING)
		return EBUSY;
	if (strlen(config) >= sizeof(cfg_text))
		return E2BIG;
	memcpy(cfg_text, config, strlen(config) + 1);
	if (cov_config_parse(cfg_text, &cfg))
		return EINVAL;
	if (wake[0] < 0 && pipe2(wake, O_CLOEXEC | O_NONBLOCK))
		return errno;
	/* drain requests left over from a previous run */
	while (read(wake[0], drain, sizeof(drain)) > 0)
		;
	state_begin();
	cov_state.starts++;
	cov_state.phase = COV_STARTING;
	cov_state.dump_sig = cfg.dump_sig;
	cov_state.stop_sig = cfg.stop_sig;
	cov_state.dumps = cov_state.dump_errors = cov_state.dump_requests = 0;
	cov_state.files = cov_state.lines = 0;
	cov_state.last_dump_ns = 0;
	cov_state.error[0] = 0;
	state_end();
	make_names();
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, payload_main, NULL);
	pthread_attr_destroy(&attr);
	if (rc) {
		set_phase(COV_FAILED);
		return rc;
	}
	return 0;
}
