/*
 * proc.c - what /proc tells about a process, without touching it, and the
 * payload's status block read through process_vm_readv.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include "cli.h"
#include "../inject/inject.h"

int cli_parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long n;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	if (*end || errno || n <= 0 || n > 4194304)
		return -1;
	*pid = (pid_t)n;
	return 0;
}

int cli_parse_seconds(const char *s, double *out)
{
	char *end;
	double d;

	if (!s || !*s)
		return -1;
	d = strtod(s, &end);
	if (*end || !(d > 0) || d > 86400)
		return -1;
	*out = d;
	return 0;
}

static void parse_ids(const char *v, unsigned *a, unsigned *b)
{
	sscanf(v, "%u %u", a, b);
}

int cli_proc_status_parse(const char *text, struct proc_status *st)
{
	const char *line = text;
	int have = 0;

	memset(st, 0, sizeof(*st));
	while (line && *line) {
		const char *v = strchr(line, ':');
		const char *eol = strchr(line, '\n');

		if (v && (!eol || v < eol)) {
			size_t k = v - line;

			for (v++; *v == ' ' || *v == '\t'; v++)
				;
			if (k == 4 && !strncmp(line, "Name", 4)) {
				size_t n = eol ? (size_t)(eol - v) : strlen(v);

				snprintf(st->name, sizeof(st->name), "%.*s", (int)n, v);
				have |= 1;
			} else if (k == 5 && !strncmp(line, "State", 5)) {
				st->state = *v;
				have |= 2;
			} else if (k == 9 && !strncmp(line, "TracerPid", 9)) {
				st->tracer = atoi(v);
			} else if (k == 3 && !strncmp(line, "Uid", 3)) {
				parse_ids(v, &st->uid, &st->euid);
			} else if (k == 3 && !strncmp(line, "Gid", 3)) {
				parse_ids(v, &st->gid, &st->egid);
			} else if (k == 6 && !strncmp(line, "Groups", 6)) {
				char *end;

				while (st->ngroups < 64) {
					unsigned long g = strtoul(v, &end, 10);

					if (end == v)
						break;
					st->groups[st->ngroups++] = (gid_t)g;
					v = end;
				}
			} else if (k == 6 && !strncmp(line, "SigCgt", 6)) {
				st->sigcgt = strtoull(v, NULL, 16);
			} else if (k == 6 && !strncmp(line, "SigIgn", 6)) {
				st->sigign = strtoull(v, NULL, 16);
			} else if (k == 5 && !strncmp(line, "NSpid", 5)) {
				char *end;
				long n;

				/* outermost first: the last is its own namespace's */
				while ((n = strtol(v, &end, 10)) > 0 && end != v) {
					st->nspid = (pid_t)n;
					v = end;
				}
			} else if (k == 6 && !strncmp(line, "CapEff", 6)) {
				st->capeff = strtoull(v, NULL, 16);
			} else if (k == 7 && !strncmp(line, "Seccomp", 7)) {
				st->seccomp = atoi(v);
			} else if (k == 10 && !strncmp(line, "NoNewPrivs", 10)) {
				st->nonewprivs = atoi(v);
			} else if (k == 7 && !strncmp(line, "Kthread", 7)) {			} else if (k == 7 && !strncmp(line, "Kthread", 7)) {
				st->kthread = atoi(v);
			}
		}
		line = eol ? eol + 1 : NULL;
	}
	return have == 3 ? 0 : -EINVAL;
}

int cli_proc_status(pid_t pid, struct proc_status *st)
{
	char fn[64], buf[8192];
	ssize_t n;
	int fd, r;

	snprintf(fn, sizeof(fn), "/proc/%d/status", (int)pid);
	if ((fd = open(fn, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = 0;
	if ((r = cli_proc_status_parse(buf, st)))
		return r;
	snprintf(fn, sizeof(fn), "/proc/%d/stat", (int)pid);
	if ((fd = open(fn, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		if (cli_stat_starttime(buf, &st->starttime))
			st->starttime = 0;
	}
	/* Kernel threads have no address space: an empty maps file. */
	snprintf(fn, sizeof(fn), "/proc/%d/maps", (int)pid);
	if ((fd = open(fn, O_RDONLY | O_CLOEXEC)) >= 0) {
		st->kthread = st->kthread || read(fd, buf, 1) == 0;
		close(fd);
	}
	return 0;
}

/* "pid (comm) S ppid ...": comm may hold spaces and parentheses. */
int cli_stat_ppid(const char *stat, pid_t *ppid)
{
	const char *rp = strrchr(stat, ')');
	char state;
	int pp;

	if (!rp || sscanf(rp + 1, " %c %d", &state, &pp) != 2)
		return -1;
	*ppid = pp;
	return 0;
}

/* Field 22, starttime, counted from the state field (3) after ')'. */
int cli_stat_starttime(const char *stat, uint64_t *starttime)
{
	const char *p = strrchr(stat, ')');
	unsigned long long v;
	int field = 2;

	if (!p)
		return -1;
	for (p++; *p && field < 22; p++)
		if (*p == ' ' && p[1] != ' ')
			field++;
	if (field != 22 || sscanf(p, "%llu", &v) != 1)
		return -1;
	*starttime = v;
	return 0;
}

/* Could the target, with its own credentials, create files in dir? */
int cli_dir_writable_by(const char *dir, const struct proc_status *st)
{
	struct statvfs vfs;
	struct stat s;
	int in_group;

	if (stat(dir, &s) || !S_ISDIR(s.st_mode))
		return 0;
	in_group = s.st_gid == st->egid;
	for (int i = 0; i < st->ngroups && !in_group; i++)
		in_group = s.st_gid == st->groups[i];
	if (st->euid == 0)	/* root passes the mode bits; not a read-only mount */
		return statvfs(dir, &vfs) == 0 && !(vfs.f_flag & ST_RDONLY);
	if (s.st_uid == st->euid)
		return (s.st_mode & 0300) == 0300;
	if (in_group)
		return (s.st_mode & 0030) == 0030;
	return (s.st_mode & 0003) == 0003;
}

int cli_read_state(pid_t pid, struct cov_state *out)
{
	struct inject_err err = { .msg = "" };
	uint32_t seq;
	raddr_t addr;
	int r;

	if ((r = inject_payload_symbol(pid, "cov_state", &addr, &err)))
		return r;
	for (int tries = 0; tries < 1000; tries++) {
		if ((r = inject_read(pid, addr, out, sizeof(*out))))
			return r;
		if (out->magic != COV_STATE_MAGIC || out->abi != COV_STATE_ABI)
			return -EPROTO;
		if ((out->seq & 1) == 0 &&
		    !inject_read(pid, addr + offsetof(struct cov_state, seq),
				 &seq, sizeof(seq)) && seq == out->seq) {
			out->data_file[sizeof(out->data_file) - 1] = 0;
			out->error[sizeof(out->error) - 1] = 0;
			return 0;
		}
		usleep(100);
	}
	return -EAGAIN;
}

/*
 * The collector records getpid(), the pid in the target's own pid
 * namespace (a container's 1); we name it by the pid we see.  NSpid (Linux
 * 4.1) gives both; without it the two namespaces are one.
 */
int cli_state_is_own(pid_t pid, const struct cov_state *s)
{
	struct proc_status st;

	if (cli_proc_status(pid, &st))
		return 0;
	return s->pid == (st.nspid ? st.nspid : pid);
}
