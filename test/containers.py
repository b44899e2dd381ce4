"""End-to-end tests where production Python runs: in real pid, mount, uts
and user namespaces (unshare, nsenter), with a private /tmp or a read-only
root, as pid 1, as another user, and with only the capabilities a
container has.  The data must reach the directory the caller named, and a
target that cannot be measured is refused untouched."""
import glob
import os
import re
import shutil
import socket
import subprocess

import coverage

import procs
from lib import (COVINJECT, DOCKER_CAPS, ROOT, TARGETS, Failure, Skip, Target, as_nobody,
                 check, cli, cli_ok, get, measured, tagged, wait_for)


def files(d):
    return glob.glob(os.path.join(d, ".coverage.*"))


def private_tmp(exe, tmp):
    """What the target's own tmpfs hides: /tmp, unless this checkout or the
    interpreter (sid's wrapper) is in it, then the test's directory only."""
    inside = ROOT.startswith("/tmp/") or os.path.realpath(exe).startswith("/tmp/")
    return tmp if inside else "/tmp"


def container(exe, script, tmp, *args, extra=""):
    """script as pid 1 of new pid, mount and uts namespaces whose /tmp is
    its own tmpfs: the test's directories do not exist for it."""
    hide = private_tmp(exe, tmp)
    setup = ("mount --make-rprivate / && mount -t tmpfs covinject-test %s && "
             "hostname covinject-ns && %s" % (hide, extra))
    t = Target(exe, script, *args, wrap=[
        "unshare", "--pid", "--mount", "--uts", "--fork", "--mount-proc",
        "sh", "-c", setup + 'exec "$0" "$@"'])
    theirs = "/proc/%d/root%s" % (t.pid, tmp)
    check(not os.path.exists(theirs) or os.stat(theirs).st_ino != os.stat(tmp).st_ino,
          "the target sees %s" % tmp)
    with open("/proc/%d/status" % t.pid) as f:
        check(re.search(r"^NSpid:\s+%d\s+1$" % t.pid, f.read(), re.M), "not pid 1 inside")
    return t


def t_container_from_host(exe, tmp):
    """A container's pid 1 attached from the host by its host pid, -o a host
    directory it cannot see: start, requests, dump, status, stop; the data
    is in the host directory and coverage.py reports it."""
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    t = container(exe, "http_server.py", tmp)
    port = int(t.ready[1])
    started = cli_ok("start", "-o", out, t.pid)
    check(re.search(r"data file: %s/\.coverage\.covinject-ns\.pid1\." % re.escape(out), started),
          "start said %r" % started)
    check(get(port, "/a") == "a2", "route a")
    path = cli_ok("dump", t.pid).strip()
    check(os.path.dirname(path) == out and tagged("http_server.py", "a") <=
          measured(path, "http_server.py"), "dump: %s" % path)
    st = cli_ok("status", t.pid)
    check(re.search(r"covinject loaded, collecting\n", st) and "data file: %s/" % out in st and
          "snapshots: 1 written, 0 failed" in st, "status: %r" % st)
    check(get(port, "/b") == "be", "route b")
    path = cli_ok("stop", t.pid).strip()
    lines = measured(path, "http_server.py")
    check(tagged("http_server.py", "a") | tagged("http_server.py", "b") <= lines and
          not tagged("http_server.py", "c") & lines, "stop's data: %s" % sorted(lines))
    r = subprocess.run(["/usr/bin/python3", "-m", "coverage", "report", "--data-file", path],
                       capture_output=True, text=True, cwd=out)
    check(r.returncode == 0 and "http_server.py" in r.stdout, "coverage report: %s" % r.stderr)
    check(get(port, "/c") == "c3" and t.alive(), "not serving after stop")


def t_container_scope(exe, tmp):
    """--source and --include name directories as the caller sees them: one
    the container sees at the same path, or under /proc/PID/root; one only
    the host has is refused, untouched."""
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    t = container(exe, "http_server.py", tmp)
    r = cli("start", "-o", out, "--source", tmp, t.pid)
    check(r.returncode == 1 and re.match(
        r"^covinject: start %d: --source %s: the process does not see this directory" %
        (t.pid, re.escape(tmp)), r.stderr), "host-only source: %r" % r.stderr)
    check(not t.payload_mapped(), "the target was touched")
    theirs = "/proc/%d/root%s" % (t.pid, TARGETS)
    for scope in (["--source", TARGETS], ["--source", theirs],
                  ["--include", theirs + "/http*"]):
        cli_ok("start", "-o", out, *scope, t.pid)
        check(get(int(t.ready[1]), "/a") == "a2", "route a")
        path = cli_ok("stop", t.pid).strip()
        check(tagged("http_server.py", "a") <= measured(path, "http_server.py"),
              "%s: nothing measured" % " ".join(scope))


def ask(port, text):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(text.encode())
        return s.recv(1024).decode()


def t_container_tree(exe, tmp):
    """--tree from the host on a forking server that is a container's pid 1:
    master and workers, by host pid, all into the host directory."""
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    t = container(exe, "prefork.py", tmp, "1000")
    port = int(t.ready[1])
    wait_for(lambda: len(procs.children(t.pid)) == 3, "3 workers")
    started = cli_ok("start", "--tree", "-o", out, t.pid)
    check(started.count("collecting in ") == 4, "start --tree: %r" % started)
    for i in range(12):
        check(ask(port, "req%d" % i).startswith("pid "), "bad reply")
    dumped = cli_ok("dump", "--tree", t.pid)
    check(len(re.findall(r"^\d+: %s/" % re.escape(out), dumped, re.M)) == 4,
          "dump --tree: %r" % dumped)
    cli_ok("stop", "--tree", t.pid)
    combined = coverage.CoverageData(os.path.join(tmp, "combined"))
    for p in files(out):
        d = coverage.CoverageData(p)
        d.read()
        combined.update(d)
    check(len(files(out)) == 4, "files: %s" % files(out))
    check(tagged("prefork.py", "h") <= set(combined.lines(
        os.path.realpath(os.path.join(TARGETS, "prefork.py")))), "no request handled")


def t_container_inside(exe, tmp):
    """From inside the container (nsenter -t PID -p -m, as docker exec and
    kubectl exec do): `covinject start 1`, dump, stop, into a directory of
    the container's own /tmp; paths printed are the container's."""
    t = container(exe, "http_server.py", tmp)
    port = int(t.ready[1])
    inside = ["nsenter", "-t", str(t.pid), "--pid", "--mount", "--uts", "--"]
    subprocess.run(inside + ["mkdir", "-p", "/tmp/inside"], check=True)
    out = cli_ok("start", "-o", "/tmp/inside", 1, prefix=inside)
    check("collecting in 1 " in out and "data file: /tmp/inside/.coverage.covinject-ns.pid1."
          in out, "start 1 inside: %r" % out)
    check(get(port, "/a") == "a2", "route a")
    path = cli_ok("dump", 1, prefix=inside).strip()
    check(path.startswith("/tmp/inside/"), "dump printed %r" % path)
    check("collecting" in cli_ok("status", 1, prefix=inside), "status inside")
    path = cli_ok("stop", 1, prefix=inside).strip()
    # SQLite resolves /proc/PID/root as a symlink ("/": ours), so copy it out
    mine = os.path.join(tmp, os.path.basename(path))
    shutil.copy("/proc/%d/root%s" % (t.pid, path), mine)
    check(tagged("http_server.py", "a") <= measured(mine, "http_server.py"), "data: %s" % mine)


def t_read_only_root(exe, tmp):
    """A container whose every mount is read-only (Kubernetes
    readOnlyRootFilesystem): snapshots still reach -o, on dump and the one
    written when the program ends."""
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    ro = "for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do " \
         "mount -o remount,bind,ro $m 2>/dev/null; done; "
    t = container(exe, "exiter.py", tmp, extra=ro)
    r = subprocess.run(["nsenter", "-t", str(t.pid), "--mount", "--", "touch", "/tmp/x"],
                       capture_output=True, text=True)
    check(r.returncode and "Read-only" in r.stderr, "its root is writable: %r" % r.stderr)
    cli_ok("start", "-o", out, t.pid)
    path = cli_ok("dump", t.pid).strip()
    check(os.path.dirname(path) == out, "dump: %s" % path)
    t.send("exit")
    t.proc.wait(timeout=10)
    check(files(out) == [path] and tagged("exiter.py", "e") <= measured(path, "exiter.py"),
          "exit snapshot: %s" % files(out))


def t_nobody_both(exe, tmp):
    """Target and covinject both run as nobody: the kernel's ptrace rules,
    nothing more, let the target's own user attach."""
    out = os.path.join(tmp, "out")
    os.mkdir(out, 0o777)
    os.chmod(out, 0o777)
    os.chmod(tmp, 0o755)
    t = Target(exe, "http_server.py", preexec=as_nobody)
    cli_ok("start", "-o", out, t.pid, user=65534)
    check(get(int(t.ready[1]), "/a") == "a2", "route a")
    path = cli_ok("dump", t.pid, user=65534).strip()
    check(os.stat(path).st_uid == 65534, "data file owned by %d" % os.stat(path).st_uid)
    cli_ok("stop", t.pid, user=65534)
    check(tagged("http_server.py", "a") <= measured(path, "http_server.py"), "data")


def t_cap_sys_ptrace_only(exe, tmp):
    """covinject as another uid holding only CAP_SYS_PTRACE (setpriv, ambient)
    attaches to a root target: no /proc/PID/fd, no syscall file, no signal."""
    out = os.path.join(tmp, "out")
    os.mkdir(out, 0o755)
    os.chmod(tmp, 0o755)
    t = Target(exe, "http_server.py")
    only = ["setpriv", "--reuid=4321", "--regid=4321", "--clear-groups",
            "--inh-caps=-all,+sys_ptrace", "--ambient-caps=+sys_ptrace",
            "--bounding-set=-all,+sys_ptrace"]
    cli_ok("start", "-o", out, t.pid, prefix=only)
    check(get(int(t.ready[1]), "/a") == "a2", "route a")
    cli_ok("dump", t.pid, prefix=only)
    path = cli_ok("stop", t.pid, prefix=only).strip()
    check(tagged("http_server.py", "a") <= measured(path, "http_server.py"), "data")
    r = cli("status", t.pid, prefix=only[:4])      # the same uid without the capability
    check(r.returncode == 1 and "it runs as uid 0 and covinject as uid 4321" in r.stderr,
          "without CAP_SYS_PTRACE: %r" % r.stderr)


def t_docker_caps(exe, tmp):
    """root with Docker's default capabilities plus SYS_PTRACE (docker run
    --cap-add SYS_PTRACE) attaches; without it, the refusal says to add it."""
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    t = Target(exe, "http_server.py")
    docker = ["setpriv", "--bounding-set", DOCKER_CAPS + ",+sys_ptrace"]
    cli_ok("start", "-o", out, t.pid, prefix=docker)
    check(get(int(t.ready[1]), "/a") == "a2", "route a")
    path = cli_ok("stop", t.pid, prefix=docker).strip()
    check(tagged("http_server.py", "a") <= measured(path, "http_server.py"), "data")
    r = cli("start", "-o", out, t.pid, prefix=["setpriv", "--bounding-set", DOCKER_CAPS])
    check(r.returncode == 1 and "--cap-add SYS_PTRACE" in r.stderr, "refusal: %r" % r.stderr)


def t_user_namespace(exe, tmp):
    """A target in a user namespace (a rootless container: root inside,
    nobody outside), attached from the host."""
    if open("/proc/sys/user/max_user_namespaces").read().strip() == "0":
        raise Skip("user namespaces are disabled here (user.max_user_namespaces is 0)")
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    os.chmod(out, 0o777)
    os.chmod(tmp, 0o755)
    t = Target(exe, "http_server.py", wrap=[
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        "unshare", "--user", "--map-root-user"])
    with open("/proc/%d/uid_map" % t.pid) as f:
        check(f.read().split()[:2] == ["0", "65534"], "not root-in-userns")
    cli_ok("start", "-o", out, t.pid)
    check(get(int(t.ready[1]), "/a") == "a2", "route a")
    path = cli_ok("stop", t.pid).strip()
    check(os.stat(path).st_uid == 65534 and tagged("http_server.py", "a") <=
          measured(path, "http_server.py"), "data")


def sqlite_dir():
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if os.path.exists(os.path.join(d, "libsqlite3.so.0")):
            return os.path.realpath(d)
    raise Skip("no libsqlite3.so.0 found on this machine")


def in_own_mounts(exe, tmp, then):
    """A target in a mount namespace of its own, changed by `then` (run in
    it with nsenter) once the interpreter has loaded its libraries."""
    t = Target(exe, "idle.py", wrap=["unshare", "--mount", "--propagation", "private"])
    subprocess.run(["nsenter", "-t", str(t.pid), "--mount", "--", "sh", "-c", then], check=True)
    return t


def t_no_sqlite(exe, tmp):
    """No libsqlite3.so.0 in the target's root: refused before anything is
    touched.  One that is there but cannot load: the collector refuses to
    start, says why, and installs nothing."""
    libdir = sqlite_dir()
    t = in_own_mounts(exe, tmp, "mount -t tmpfs covinject-test %s" % libdir)
    r = cli("start", "-o", tmp, t.pid)
    check(r.returncode == 1 and re.match(
        r"^covinject: start %d: the process cannot load libsqlite3\.so\.0: none in its root's "
        r"library directories.*libsqlite3-0 on Debian" % t.pid, r.stderr), "refusal: %r" % r.stderr)
    check(t.alive() and not t.payload_mapped(), "the target was touched")
    broken = os.path.join(tmp, "not-a-library")
    with open(broken, "w") as f:
        f.write("not an ELF file\n")
    t = in_own_mounts(exe, tmp, "mount --bind %s %s/libsqlite3.so.0" % (broken, libdir))
    r = cli("start", "-o", tmp, t.pid)
    check(r.returncode == 1 and re.match(
        r"^covinject: start %d: collection did not start: load libsqlite3\.so\.0: .*covinject "
        r"writes coverage.py's SQLite data files with the process's own libsqlite3" % t.pid,
        r.stderr), "refusal: %r" % r.stderr)
    st = cli_ok("status", t.pid)
    check("covinject loaded, failed" in st and t.alive(), "status: %r" % st)


def t_no_proc(exe, tmp):
    """No /proc in the target's root: a clear refusal, the target untouched."""
    t = in_own_mounts(exe, tmp, "umount -l /proc")
    r = cli("start", "-o", tmp, t.pid)
    check(r.returncode == 1 and re.match(
        r"^covinject: start %d: the process has no /proc in its root" % t.pid, r.stderr),
        "refusal: %r" % r.stderr)
    check(t.alive() and not t.payload_mapped(), "the target was touched")


# every interpreter: the container from the host; the system's: the rest
E2E = [t_container_from_host]
SYSTEM_EXE = [t_container_scope, t_container_tree, t_container_inside, t_read_only_root, t_nobody_both,
              t_cap_sys_ptrace_only, t_docker_caps, t_user_namespace, t_no_sqlite, t_no_proc]
