/*
 * unit.c - host-only unit tests of covinject's pure helpers: maps lines,
 * ELF symbol lookup (against this process's own libc), signal names, pid
 * and seconds arguments, /proc/PID/status, the payload's configuration
 * text, path scoping and the numbits line store.  No process is traced.
 *
 * Every check has a name; a failed one prints "FAIL name: detail".  The
 * last line is "unit: N passed, M failed"; the exit status is 1 if M > 0.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "../inject/arch.h"
#include "../inject/maps.h"
#include "../inject/elf.h"
#include "../cli/cli.h"
#include "../payload/config.h"
#include "../payload/bytecode.h"
#include "../payload/store.h"
#include "../payload/versions.h"

static int passed, failed;

static void check(const char *name, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check(const char *name, int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

#define CHECK(name, cond) check(name, !!(cond), "%s", #cond)

/* A temporary directory for the files the tests need, removed at exit. */
static char tmpdir[] = "/tmp/covinject-unit.XXXXXX";

static void tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The whole file (also /proc files, whose st_size is 0) in a malloc'd,
 * so 8-byte aligned, NUL-terminated buffer; NULL on error. */
static unsigned char *read_file(const char *path, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = NULL, *nb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r = -1;

	if (fd < 0)
		return NULL;
	while ((nb = realloc(buf, cap))) {
		buf = nb;
		r = read(fd, buf + n, cap - n - 1);
		if (r <= 0)
			break;
		n += r;
		if (n + 1 == cap)
			cap *= 2;
	}
	close(fd);
	if (!nb || r != 0) {
		free(buf);
		return NULL;
	}
	buf[n] = 0;
	*len = n;
	return buf;
}

static void test_maps(void)
{
	struct map_entry e;
	int r;

	r = maps_parse_line("7f3a1c000000-7f3a1c028000 r--p 00000000 fd:01 "
			    "1835029                    "
			    "/usr/lib/x86_64-linux-gnu/libc.so.6\n", &e);
	CHECK("maps_file_ok", r == 0);
	CHECK("maps_file_start", e.start == 0x7f3a1c000000ULL);
	CHECK("maps_file_end", e.end == 0x7f3a1c028000ULL);
	CHECK("maps_file_perms", !strcmp(e.perms, "r--p"));
	CHECK("maps_file_offset", e.offset == 0);
	CHECK("maps_file_inode", e.inode == 1835029);
	check("maps_file_path", !strcmp(e.path,
	      "/usr/lib/x86_64-linux-gnu/libc.so.6"), "path '%s'", e.path);
	CHECK("maps_file_is_libc", maps_is_libc(e.path));

	r = maps_parse_line("7ffd4a1f0000-7ffd4a211000 rw-p 00001000 00:00 0\n",
			    &e);
	CHECK("maps_anon_ok", r == 0 && e.offset == 0x1000);
	check("maps_anon_path", e.path[0] == 0, "path '%s'", e.path);

	r = maps_parse_line("7f3a1d000000-7f3a1d004000 r-xp 00002000 00:01 77 "
			    "     /memfd:covinject-payload (deleted)\n", &e);
	CHECK("maps_memfd_ok", r == 0 && e.inode == 77);
	check("maps_memfd_path", !strcmp(e.path,
	      "/memfd:covinject-payload (deleted)"), "path '%s'", e.path);
	CHECK("maps_memfd_is_payload", maps_is_payload(e.path));
	CHECK("maps_memfd_not_libc", !maps_is_libc(e.path));

	r = maps_parse_line("00400000-00401000 r--p 00000000 08:02 42   "
			    "/srv/my app/bin/python3.11\n", &e);
	CHECK("maps_spaces_ok", r == 0);
	check("maps_spaces_path", !strcmp(e.path, "/srv/my app/bin/python3.11"),
	      "path '%s'", e.path);
	CHECK("maps_spaces_is_python", maps_is_python(e.path));

	CHECK("maps_empty", maps_parse_line("", &e) == -EINVAL);
	CHECK("maps_newline", maps_parse_line("\n", &e) == -EINVAL);
	CHECK("maps_garbage", maps_parse_line("hello world\n", &e) == -EINVAL);
	CHECK("maps_end_lt_start", maps_parse_line("2000-1000 r--p 00000000 "
					"00:00 0\n", &e) == -EINVAL);
	CHECK("maps_short_perms", maps_parse_line("1000-2000 r- 00000000 "
					"00:00 0\n", &e) == -EINVAL);
	CHECK("maps_no_inode", maps_parse_line("1000-2000 r--p 00000000 "
					"00:00\n", &e) == -EINVAL);

	CHECK("is_libc_old", maps_is_libc("/lib/libc-2.31.so"));
	CHECK("is_libc_rel", !maps_is_libc("libc.so.6"));
	CHECK("is_libc_crypt", !maps_is_libc("/usr/lib/libcrypt.so.1"));
	CHECK("is_libdl", maps_is_libdl("/lib/libdl.so.2"));
	CHECK("is_python_lib", maps_is_python("/usr/lib/libpython3.11.so.1.0"));
	CHECK("is_python_perl", !maps_is_python("/usr/bin/perl"));
	CHECK("is_payload_other", !maps_is_payload("/memfd:other (deleted)"));
}

/* This process's memory, as inject.c reads the target's. */
static int read_self(void *ctx, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);

	(void)ctx;
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EFAULT;
}

/* A copy of a mapped object: reads past its end fail as unmapped memory. */
struct copy {
	unsigned char *p;
	size_t len;
	uint64_t base;
};

static int read_copy(void *ctx, uint64_t addr, void *buf, size_t len)
{
	const struct copy *c = ctx;

	if (addr < c->base || addr - c->base > c->len || len > c->len - (addr - c->base))
		return -EFAULT;
	memcpy(buf, c->p + (addr - c->base), len);
	return 0;
}

/* start..end of this process, page by page; unreadable pages stay zero. */
static unsigned char *copy_mapped(uint64_t start, uint64_t end)
{
	unsigned char *p = calloc(1, end - start);

	for (uint64_t a = start; p && a < end; a += 4096)
		if (read_self(NULL, a, p + (a - start), 4096))
			memset(p + (a - start), 0, 4096);
	return p;
}

/*
 * AddressSanitizer interposes dlopen (asan_interceptors.cpp): under it dlsym
 * finds the wrapper, not libc's dlopen, so only that address is not compared.
 * gcc says __SANITIZE_ADDRESS__, clang before 17 only __has_feature.
 */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define ASAN_INTERPOSES(sym) (strcmp((sym), "dlopen") == 0)
#else
#define ASAN_INTERPOSES(sym) 0
#endif

static const char *const elf_syms[] = { "close", "memfd_create", "dlopen" };

/* Our own libc as mapped, read the way the target's is: dlsym agrees. */
static void test_elf_self(const struct lib_map *lm)
{
	struct elf_image im = { read_self, NULL, lm->start };
	const unsigned char *code;
	char name[64];
	uint64_t got;
	size_t clen;
	int r;

	for (size_t i = 0; i < sizeof(elf_syms) / sizeof(elf_syms[0]); i++) {
		void *want = dlsym(RTLD_DEFAULT, elf_syms[i]);

		r = elf_image_symbol(&im, elf_syms[i], &got);
		snprintf(name, sizeof(name), "elf_image_%s", elf_syms[i]);
		check(name, r == 0, "%s in %s: %d", elf_syms[i], lm->path, r);
		if (r || ASAN_INTERPOSES(elf_syms[i]))
			continue;
		snprintf(name, sizeof(name), "elf_addr_%s", elf_syms[i]);
		check(name, got == (uintptr_t)want, "computed %#llx, dlsym %p",
		      (unsigned long long)got, want);
	}
	r = elf_image_symbol(&im, "covinject_no_such_symbol", &got);
	check("elf_missing_sym", r == -ENOENT, "got %d", r);
	code = arch_sigreturn_code(&clen);
	r = elf_image_find_code(&im, code, clen, &got);
	check("elf_sigreturn", r == 0 && !memcmp((void *)(uintptr_t)got, code, clen),
	      "got %d at %#llx", r, (unsigned long long)got);
	im.base = lm->start + 4096;
	r = elf_image_symbol(&im, "close", &got);
	check("elf_not_a_header", r == -ENOEXEC, "got %d", r);
	im.base = 8;
	r = elf_image_symbol(&im, "close", &got);
	check("elf_unmapped", r == -EFAULT, "got %d", r);
}

/* The same bytes copied, cut short and corrupted: errors, never a crash
 * or another answer. */
static void test_elf_copy(const struct lib_map *lm, uint64_t want)
{
	struct copy c = { copy_mapped(lm->start, lm->end), lm->end - lm->start, lm->start };
	struct elf_image im = { read_copy, &c, lm->start };
	unsigned errors = 0, wrong = 0;
	size_t full = c.len;
	uint64_t got;
	int r;

	if (!c.p) {
		check("elf_copy", 0, "cannot copy %s", lm->path);
		return;
	}
	r = elf_image_symbol(&im, "close", &got);
	check("elf_copy_same", r == 0 && got == want, "got %d %#llx", r,
	      (unsigned long long)got);
	for (c.len = 0; c.len < full; c.len += c.len < 65536 ? 61 : 40961) {
		r = elf_image_symbol(&im, "close", &got);
		errors += r != 0;
		wrong += r == 0 && got != want;
	}
	check("elf_trunc_sweep", errors > 0 && !wrong, "%u errors, %u wrong", errors, wrong);
	c.len = full;
	srand(42);
	for (int i = 0; i < 3000; i++) {
		size_t at = (size_t)rand() % (i % 2 ? 4096 : full);
		unsigned char old = c.p[at];

		c.p[at] ^= (unsigned char)(1 + rand() % 255);
		r = elf_image_symbol(&im, "close", &got);
		c.p[at] = old;
		(void)r;	/* any answer; ASan (make sanitize) sees bad reads */
	}
	c.p[0] = 0;
	r = elf_image_symbol(&im, "close", &got);
	check("elf_bad_magic", r == -ENOEXEC, "got %d", r);
	free(c.p);
}

static void test_elf(void)
{
	struct lib_map lm;
	struct elf_image im = { read_self, NULL, 0 };
	uint64_t want = 0;
	int r = maps_find(getpid(), maps_is_libc, &lm);

	check("elf_own_libc", r == 0, "no libc in /proc/self/maps: %d", r);
	if (r)
		return;
	test_elf_self(&lm);
	im.base = lm.start;
	if (elf_image_symbol(&im, "close", &want) == 0)
		test_elf_copy(&lm, want);
}

static void test_signals(void)
{
	const struct {
		const char *s;
		int want;
	} cases[] = {
		{ "USR1", SIGUSR1 }, { "SIGUSR1", SIGUSR1 },
		{ "usr1", SIGUSR1 }, { "10", 10 }, { "RTMIN", SIGRTMIN },
		{ "RTMIN+3", SIGRTMIN + 3 },
		{ "SIGRTMAX-1", SIGRTMAX - 1 }, { "sigrtmax", SIGRTMAX },
		{ "", -1 }, { "FOO", -1 }, { "RTMIN+999", -1 }, { "-1", -1 },
		{ "0", -1 }, { "65", -1 }, { "USR1x", -1 }, { "RTMIN+", -1 },
		{ "RTMAX+1", -1 }, { "SIG", -1 },
	};
	char name[48], buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = cli_parse_signal(cases[i].s);

		snprintf(name, sizeof(name), "signal_parse '%s'", cases[i].s);
		check(name, got == cases[i].want, "got %d, want %d", got,
		      cases[i].want);
	}
	CHECK("signal_parse_null", cli_parse_signal(NULL) == -1);
	cli_signal_name(SIGUSR2, buf, sizeof(buf));
	check("signal_name_usr2", !strcmp(buf, "USR2") &&
	      cli_parse_signal(buf) == SIGUSR2, "'%s'", buf);
	cli_signal_name(SIGRTMIN + 3, buf, sizeof(buf));
	check("signal_name_rtmin3", !strcmp(buf, "RTMIN+3") &&
	      cli_parse_signal(buf) == SIGRTMIN + 3, "'%s'", buf);
	CHECK("reserved_kill", cli_signal_reserved(SIGKILL) != NULL);
	CHECK("reserved_segv", cli_signal_reserved(SIGSEGV) != NULL);
	CHECK("reserved_chld", cli_signal_reserved(SIGCHLD) != NULL);
	CHECK("reserved_32", cli_signal_reserved(32) != NULL);
	CHECK("reserved_usr1", cli_signal_reserved(SIGUSR1) == NULL);
	CHECK("reserved_usr2", cli_signal_reserved(SIGUSR2) == NULL);
	CHECK("reserved_rtmin3", cli_signal_reserved(SIGRTMIN + 3) == NULL);
}

static void test_args(void)
{
	static const char *const bad_pids[] = {
		"0", "-5", "abc", "12a", "99999999999", "", " 1", "+1",
	};
	static const char *const bad_secs[] = {
		"0", "-1", "x", "", "1s", "nan",
	};
	double d = 0;
	pid_t pid = 0;
	char name[48];

	CHECK("pid_1", cli_parse_pid("1", &pid) == 0 && pid == 1);
	CHECK("pid_4242", cli_parse_pid("4242", &pid) == 0 && pid == 4242);
	for (size_t i = 0; i < sizeof(bad_pids) / sizeof(bad_pids[0]); i++) {
		snprintf(name, sizeof(name), "pid_bad '%s'", bad_pids[i]);
		pid = 77;
		CHECK(name, cli_parse_pid(bad_pids[i], &pid) == -1 &&
		      pid == 77);
	}
	CHECK("secs_1", cli_parse_seconds("1", &d) == 0 && d == 1.0);
	CHECK("secs_0.5", cli_parse_seconds("0.5", &d) == 0 && d == 0.5);
	for (size_t i = 0; i < sizeof(bad_secs) / sizeof(bad_secs[0]); i++) {
		snprintf(name, sizeof(name), "secs_bad '%s'", bad_secs[i]);
		CHECK(name, cli_parse_seconds(bad_secs[i], &d) == -1);
	}
}

static void handler(int sig)
{
}

static void test_proc_status(void)
{
	static const char text[] =
		"Name:\tgunicorn: worker\n"
		"Umask:\t0022\n"
		"State:\tS (sleeping)\n"
		"Tgid:\t4242\n"
		"Pid:\t4242\n"
		"PPid:\t1\n"
		"TracerPid:\t977\n"
		"Uid:\t1000\t1001\t1002\t1003\n"
		"Gid:\t100\t101\t102\t103\n"
		"FDSize:\t64\n"
		"Groups:\t4 24 27 1000 \n"
		"NStgid:\t4242\t1\n"
		"NSpid:\t4242\t17\t1\n"
		"SigQ:\t0/63428\n"
		"SigPnd:\t0000000000000000\n"
		"SigBlk:\t0000000000000000\n"
		"SigIgn:\t0000000001001000\n"
		"SigCgt:\t0000000180000a02\n"
		"CapInh:\t0000000000000000\n";
	char dir[PATH_MAX], *real;
	struct proc_status st;
	struct sigaction sa;
	size_t len = 0;
	int r;

	r = cli_proc_status_parse(text, &st);
	CHECK("status_ok", r == 0);
	check("status_name", !strcmp(st.name, "gunicorn: worker"), "'%s'",
	      st.name);
	CHECK("status_state", st.state == 'S');
	CHECK("status_tracer", st.tracer == 977);
	CHECK("status_uid", st.uid == 1000 && st.euid == 1001);
	CHECK("status_gid", st.gid == 100 && st.egid == 101);
	check("status_groups", st.ngroups == 4 && st.groups[0] == 4 &&
	      st.groups[3] == 1000, "%d groups", st.ngroups);
	CHECK("status_sigcgt_usr1", st.sigcgt & (1ULL << (SIGUSR1 - 1)));
	CHECK("status_sigcgt_usr2", st.sigcgt & (1ULL << (SIGUSR2 - 1)));
	CHECK("status_sigcgt_hup", !(st.sigcgt & (1ULL << (SIGHUP - 1))));
	CHECK("status_sigign_pipe", st.sigign & (1ULL << (SIGPIPE - 1)));
	check("status_nspid", st.nspid == 1, "%d", (int)st.nspid);
	CHECK("status_no_state", cli_proc_status_parse("Name:\tx\n", &st) ==
	      -EINVAL);
	CHECK("status_empty", cli_proc_status_parse("", &st) == -EINVAL);

	/* This very process, with a handler for SIGUSR1 installed. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigaction(SIGUSR1, &sa, NULL);
	real = (char *)read_file("/proc/self/status", &len);
	r = real ? cli_proc_status_parse(real, &st) : -1;
	free(real);
	CHECK("self_status_ok", r == 0);
	check("self_status_name", !strncmp(st.name,
	      program_invocation_short_name, 15), "'%s'", st.name);
	CHECK("self_status_state", st.state == 'R');
	check("self_status_nspid", st.nspid == getpid(), "%d", (int)st.nspid);
	CHECK("self_status_uid", st.uid == getuid() && st.euid == geteuid());
	CHECK("self_status_gid", st.gid == getgid() && st.egid == getegid());
	CHECK("self_status_groups", st.ngroups == getgroups(0, NULL));
	CHECK("self_status_sigcgt", st.sigcgt & (1ULL << (SIGUSR1 - 1)));
	signal(SIGUSR1, SIG_DFL);

	/* cli_dir_writable_by: mode bits for others, access() for root. */
	tmp_path(dir, sizeof(dir), "d");
	mkdir(dir, 0700);
	memset(&st, 0, sizeof(st));
	st.uid = st.euid = 54321;
	st.gid = st.egid = 54321;
	CHECK("writable_other_0700", !cli_dir_writable_by(dir, &st));
	chmod(dir, 0703);
	CHECK("writable_other_0703", cli_dir_writable_by(dir, &st));
	st.euid = geteuid();
	chmod(dir, 0700);
	CHECK("writable_owner", cli_dir_writable_by(dir, &st));
	CHECK("writable_missing", !cli_dir_writable_by("/nonexistent", &st));
	rmdir(dir);
}

static int config(const char *text, struct cov_config *cfg)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "%s", text);
	return cov_config_parse(buf, cfg);
}

static void test_config(void)
{
	static const char *const bad[] = {
		"dump_signal=10\nstop_signal=12",
		"out=tmp\ndump_signal=10\nstop_signal=12",
		"out=/tmp\ndump_signal=10\nstop_signal=10",
		"out=/tmp\ndump_signal=10\nstop_signal=12\ncolour=blue",
		"out=/tmp\ndump_signal=10\nstop_signal=12\nsource",
		"out=/tmp\ndump_signal=10\nstop_signal=12\nsource=src",
		"out=/tmp\ndump_signal=9\nstop_signal=12",
		"out=/tmp\ndump_signal=10\nstop_signal=19",
		"out=/tmp\ndump_signal=10x\nstop_signal=12",
		"out=/tmp\ndump_signal=10",
		"",
	};
	struct cov_config cfg;
	char name[32];
	int r;

	r = config("out=/tmp\ndump_signal=10\nstop_signal=12\nsource=/a\n"
		   "source=/b\nargv=x", &cfg);
	CHECK("config_ok", r == 0);
	CHECK("config_out", cfg.out_dir && !strcmp(cfg.out_dir, "/tmp"));
	CHECK("config_sigs", cfg.dump_sig == 10 && cfg.stop_sig == 12);
	CHECK("config_sources", cfg.nsources == 2 &&
	      !strcmp(cfg.sources[0], "/a") && !strcmp(cfg.sources[1], "/b"));
	CHECK("config_argv", !strcmp(cfg.argv, "x"));
	r = config("out=/tmp\ndump_signal=10\nstop_signal=12\n", &cfg);
	CHECK("config_minimal", r == 0 && cfg.nsources == 0 &&
	      !strcmp(cfg.argv, ""));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(name, sizeof(name), "config_bad_%zu", i);
		r = config(bad[i], &cfg);
		check(name, r == -1, "accepted '%s'", bad[i]);
	}
}

static void test_scope(void)
{
	static const char *const app[] = { "/srv/app", NULL };
	static const char *const root[] = { "/", NULL };
	struct cov_scope s = { "/usr/lib/python3.11", NULL };

	CHECK("scope_app", cov_path_in_scope(&s, "/srv/app/x.py"));
	CHECK("scope_stdlib", !cov_path_in_scope(&s,
			"/usr/lib/python3.11/os.py"));
	CHECK("scope_stdlib_boundary",
	      cov_path_in_scope(&s, "/usr/lib/python3.11x/a.py"));
	CHECK("scope_site", !cov_path_in_scope(&s, "/x/site-packages/y.py"));
	CHECK("scope_dist", !cov_path_in_scope(&s,
			"/usr/lib/python3/dist-packages/z.py"));
	CHECK("scope_string", !cov_path_in_scope(&s, "<string>"));
	s.stdlib = "/usr/lib/python3.11/";
	CHECK("scope_stdlib_slash", !cov_path_in_scope(&s,
			"/usr/lib/python3.11/os.py"));
	s.sources = app;
	CHECK("scope_src_in", cov_path_in_scope(&s, "/srv/app/a.py"));
	CHECK("scope_src_prefix", !cov_path_in_scope(&s,
			"/srv/application/a.py"));
	CHECK("scope_src_itself", cov_path_in_scope(&s, "/srv/app"));
	CHECK("scope_src_other", !cov_path_in_scope(&s, "/srv/x.py"));
	s.sources = root;	/* covinject start --source / */
	CHECK("scope_src_root", cov_path_in_scope(&s, "/srv/app/a.py"));
}

static int released;

static void release(const void *key)
{
	released++;
}

static void test_store(void)
{
	static const char *const no_sources[] = { NULL };
	static const struct cov_scope scope = {
		"/usr/lib/python3.11", no_sources
	};
	static int key1, key2, key3, unknown;
	char path[PATH_MAX], real[PATH_MAX];
	struct cov_file *f, *g;
	struct cov_snap snap;
	uint32_t nfiles = 0, nlines = 0;

	tmp_path(path, sizeof(path), "app.py");
	write_file(path, "print('hello')\n");
	if (!realpath(path, real)) {
		check("store_realpath", 0, "%s: %s", path, strerror(errno));
		return;
	}
	cov_store_init(&scope);
	CHECK("store_lookup_empty", cov_store_lookup(&key1) == NULL);
	f = cov_store_add(&key1, real);
	CHECK("store_add", f && !strcmp(f->path, real) && f->in_scope);
	if (!f)
		return;
	CHECK("store_lookup", cov_store_lookup(&key1) == f);
	CHECK("store_lookup_unknown", cov_store_lookup(&unknown) == NULL);
	/* A second str object for the same file shares its bits. */
	tmp_path(path, sizeof(path), "./app.py");
	CHECK("store_same_file", cov_store_add(&key2, path) == f);
	g = cov_store_add(&key3, "/usr/lib/python3.11/os.py");
	CHECK("store_out_of_scope", g && g != f && !g->in_scope);

	cov_store_mark(f, 1);
	cov_store_mark(f, 8);
	cov_store_mark(f, 9);
	cov_store_mark(f, 200);
	cov_store_mark(f, 9);
	cov_store_mark(f, 0);
	cov_store_mark(f, -3);
	if (g)
		cov_store_mark(g, 5);
	check("store_nlines", f->nlines == 4, "nlines %u", f->nlines);
	CHECK("store_bits", f->nbytes >= 26 && f->bits[0] == 0x02 &&
	      f->bits[1] == 0x03 && f->bits[25] == 0x01);

	CHECK("store_snapshot", cov_store_snapshot(&snap) == 0);
	check("store_snap_n", snap.n == 1, "%zu files", snap.n);
	if (snap.n == 1) {
		struct cov_snap_file *sf = &snap.files[0];
		int others = 0;

		CHECK("store_snap_path", !strcmp(sf->path, real));
		check("store_snap_nbytes", sf->nbytes == 26, "nbytes %u",
		      sf->nbytes);
		CHECK("store_snap_bits", sf->nbytes >= 26 &&
		      sf->bits[0] == 0x02 && sf->bits[1] == 0x03 &&
		      sf->bits[25] == 0x01);
		for (uint32_t i = 2; i < 25 && i < sf->nbytes; i++)
			others |= sf->bits[i];
		CHECK("store_snap_zeros", others == 0);
	}
	cov_snap_free(&snap);
	CHECK("store_snap_free", snap.n == 0 && snap.files == NULL);
	cov_store_counts(&nfiles, &nlines);
	check("store_counts", nfiles == 1 && nlines == 4, "%u files, %u lines",
	      nfiles, nlines);

	cov_store_clear(release);
	check("store_release", released == 3, "%d calls for 3 keys", released);
	CHECK("store_cleared", cov_store_lookup(&key1) == NULL);
	cov_store_counts(&nfiles, &nlines);
	CHECK("store_cleared_counts", nfiles == 0 && nlines == 0);
	CHECK("store_snap_empty", cov_store_snapshot(&snap) == 0 &&
	      snap.n == 0);
	cov_snap_free(&snap);
}

/* coverage.py-style patterns, --include/--omit, and /proc/PID/stat fields. */
/* payload/versions.h: the one table of supported versions. */
static void test_versions(void)
{
	char buf[32];
	int a, b;

	CHECK("versions_first", cov_python_row(0, &a, &b) && a == 2 && b == 7);
	CHECK("versions_39", cov_python_fit(3, 9) == COV_PY_SUPPORTED);
	CHECK("versions_315", cov_python_fit(3, 15) == COV_PY_SUPPORTED);
	CHECK("versions_37", cov_python_fit(3, 7) == COV_PY_SUPPORTED);
	CHECK("versions_36", cov_python_fit(3, 6) == COV_PY_SUPPORTED);
	CHECK("versions_35_older", cov_python_fit(3, 5) == COV_PY_OLDER);
	CHECK("versions_27", cov_python_fit(2, 7) == COV_PY_SUPPORTED);
	CHECK("versions_26_older", cov_python_fit(2, 6) == COV_PY_OLDER);
	CHECK("versions_30_older", cov_python_fit(3, 0) == COV_PY_OLDER);
	CHECK("versions_316_newer", cov_python_fit(3, 16) == COV_PY_NEWER);
	CHECK("versions_40_newer", cov_python_fit(4, 0) == COV_PY_NEWER);
	CHECK("versions_range", !strcmp(cov_python_range(buf, sizeof(buf)), "2.7, 3.6-3.15"));
	CHECK("versions_newest", !strcmp(cov_python_newest(buf, sizeof(buf)), "3.15"));
	CHECK("versions_past_end", !cov_python_row(-1, &a, &b) && !cov_python_row(99, &a, &b));
}

static void test_patterns(void)
{
	static const char *const inc[] = { "*/app/*", NULL };
	static const char *const omit[] = { "*/app/test_*", "*migrations*", NULL };
	static const char *const none[] = { NULL };
	struct cov_scope sc = { "/usr/lib/python3.11", none };
	struct cov_filter f = { inc, omit }, only_omit = { NULL, omit };
	const char stat[] = "42 (a (b) c) S 7 42 42 0 -1 4194560 1 0 0 0 1 2 0 0 "
			    "20 0 3 0 123456 1000 10";
	uint64_t start = 0;
	pid_t ppid = 0;

	CHECK("fnmatch_star", cov_fnmatch("*.py", "/srv/a/b.py"));
	CHECK("fnmatch_star_slash", cov_fnmatch("/srv/*", "/srv/a/b.py"));
	CHECK("fnmatch_question", cov_fnmatch("/srv/?.py", "/srv/a.py"));
	CHECK("fnmatch_set", cov_fnmatch("/srv/[ab].py", "/srv/b.py"));
	CHECK("fnmatch_set_miss", !cov_fnmatch("/srv/[ab].py", "/srv/c.py"));
	CHECK("fnmatch_whole", !cov_fnmatch("/srv/a", "/srv/a.py"));
	CHECK("fnmatch_backtrack", cov_fnmatch("*a*b", "xaxxab"));
	CHECK("fnmatch_empty", cov_fnmatch("*", "") && !cov_fnmatch("?", ""));
	CHECK("measured_include", cov_path_measured(&sc, &f, "/srv/app/views.py"));
	CHECK("measured_not_included", !cov_path_measured(&sc, &f, "/srv/lib/x.py"));
	CHECK("measured_omitted", !cov_path_measured(&sc, &f, "/srv/app/test_views.py"));
	CHECK("measured_omitted2", !cov_path_measured(&sc, &only_omit, "/srv/db/migrations/1.py"));
	CHECK("measured_default", cov_path_measured(&sc, &only_omit, "/srv/db/models.py"));
	CHECK("measured_stdlib", !cov_path_measured(&sc, &only_omit, "/usr/lib/python3.11/os.py"));
	CHECK("stat_ppid", cli_stat_ppid(stat, &ppid) == 0 && ppid == 7);
	CHECK("stat_starttime", cli_stat_starttime(stat, &start) == 0 && start == 123456);
	CHECK("stat_short", cli_stat_starttime("42 (x) S 1 2 3", &start) == -1);
	CHECK("stat_no_paren", cli_stat_ppid("42 x S 1", &ppid) == -1);
}

/* payload/bytecode.c: line and exception tables survive a round trip, and
 * a probe goes where the tracer would report a line, jumps moved past it. */
static int locs_equal(const struct cov_loc *a, const struct cov_loc *b, size_t n)
{
	return !memcmp(a, b, n * sizeof(*a));
}

static void test_bytecode(void)
{
	struct cov_loc in[12], out[12];
	size_t len;
	uint8_t *t;
	/* lines 5 5 -1 7 300 300 2 ... (no columns: 3.9/3.10 keep none) */
	static const int lines[12] = { 5, 5, -1, 7, 300, 300, 2, 2, 2, 9, 9, 9 };
	struct cov_xentry x[2] = { { 0, 4, 6, 3 }, { 4, 6, 8, 1 } }, y[2];
	uint32_t map[13];
	struct cov_optab op = { .minor = 10, .ext = 144, .nop = 9, .jump_fwd = 110,
				.load_const = 100, .call = 131, .pop_top = 1 };
	/* line 1: LOAD_CONST 0; POP_JUMP_IF_FALSE 2 (units); line 2: NOP;
	 * RETURN_VALUE (line table of 3.10, firstline 1) */
	static const uint8_t code[] = { 100, 0, 114, 2, 9, 0, 83, 0 };
	static const uint8_t ltab[] = { 4, 0, 4, 1 };
	struct cov_loc cl[4];
	struct cov_rewrite r = { .code = code, .n = 4, .locs = cl, .first_const = 1 };

	for (int i = 0; i < 12; i++)
		in[i] = (struct cov_loc){ lines[i], lines[i], -1, -1 };
	t = cov_linetable310_encode(in, 12, 1, &len);
	CHECK("bc_310_roundtrip", t && !cov_linetable310_decode(t, len, 1, out, 12) &&
	      locs_equal(in, out, 12));
	free(t);
	in[2] = in[1];	/* 3.9 has no "no line" */
	t = cov_lnotab_encode(in, 12, 1, &len);
	CHECK("bc_39_roundtrip", t && !cov_lnotab_decode(t, len, 1, out, 12) &&
	      locs_equal(in, out, 12));
	free(t);
	in[2] = (struct cov_loc){ -1, -1, -1, -1 };
	in[4] = (struct cov_loc){ 300, 302, 4, 70 };	/* long form */
	in[6] = (struct cov_loc){ 2, 2, 0, 3 };
	t = cov_linetable311_encode(in, 12, 1, &len);
	CHECK("bc_311_roundtrip", t && !cov_linetable311_decode(t, len, 1, out, 12) &&
	      locs_equal(in, out, 12));
	free(t);
	for (uint32_t i = 0; i < 13; i++)
		map[i] = 100 * i;	/* past 63 and 4095: multi-byte varints */
	t = cov_xtable_encode(x, 2, map, &len);
	CHECK("bc_xtable", t && cov_xtable_decode(t, len, y, 2) == 2 && y[0].start == 0 &&
	      y[0].end == 400 && y[0].target == 600 && y[1].start == 400 &&
	      y[1].end == 600 && y[1].target == 800 && y[1].depth_lasti == 1);
	free(t);
	op.flags[114] = BC_HASARG | BC_JABS;
	op.flags[100] = op.flags[110] = op.flags[131] = op.flags[144] = BC_HASARG;
	op.flags[110] |= BC_JREL;
	cov_linetable310_decode(ltab, sizeof(ltab), 1, cl, 4);
	CHECK("bc_rewrite", cov_rewrite(&op, &r) == 0 && r.nprobes == 2 &&
	      r.probes[0] == 0 && r.probe_lines[0] == 1 && r.probe_lines[1] == 2 &&
	      r.hit_const == 3 && r.nout == 4 + 2 * 5 && r.map[2] == 7 &&
	      r.out[2 * 6] == 114 && r.out[2 * 6 + 1] == 7 && r.out[2 * 7] == 9 &&
	      r.out[1] == 4 && r.stack_growth == 2);
	cov_rewrite_free(&r);
}

int main(void)
{
	static const char *const files[] = { "not-elf", "empty", "app.py" };
	char path[PATH_MAX];

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_maps();
	test_elf();
	test_signals();
	test_args();
	test_proc_status();
	test_config();
	test_scope();
	test_store();
	test_patterns();
	test_versions();
	test_bytecode();

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		tmp_path(path, sizeof(path), files[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed > 0;
}
