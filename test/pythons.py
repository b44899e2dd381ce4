"""The interpreters the tests and benchmarks run: the supported versions
(read from payload/versions.h, the one table), and those of the Debian sid
root that `make sid-root` builds (CPython 3.14 and 3.15, which Debian 12 and
pyenv here do not have).

A sid interpreter runs through a small generated wrapper that keeps the
pid across every exec, so a test attaches to Popen's pid as to any other:

    unshare -m (no fork) -> sh -> chroot -> sh (cd back) -> python3.X

In its private mount namespace (slave propagation: nothing it mounts shows
on the host) the root gets /proc (dlopen of the payload goes through
/proc/self/fd), /dev, the repository and /tmp (with what is mounted under
it, such as a test's small tmpfs) at the same paths as on the host, so the
target's files, its data files and the tests' temporary directories have
one name on both sides.  Standard library only.
"""
import atexit
import os
import re
import shlex
import shutil
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSIONS_H = os.path.join(ROOT, "payload", "versions.h")
SID_ROOT = os.environ.get("COVINJECT_SID_ROOT") or "/var/cache/covinject/sid"
SID_BUILD = "make sid-root"


def supported():
    """[(major, minor)] of payload/versions.h's COV_PYTHONS rows."""
    with open(VERSIONS_H) as f:
        text = f.read()
    table = text[text.index("#define COV_PYTHONS(X)"):]
    table = table[:table.index("\n\n")]
    return [(int(a), int(b)) for a, b in re.findall(r"X\((\d+),\s*(\d+)\)", table)]


SUPPORTED = supported()


def runs():
    """[(first, last)] of SUPPORTED's runs of one major version and
    consecutive minor ones."""
    out = []
    for v in SUPPORTED:
        if out and v == (out[-1][1][0], out[-1][1][1] + 1):
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


# "2.7, 3.6-3.15", as --help and the refusals say it (cov_python_range)
SPAN = ", ".join("%d.%d" % a if a == b else "%d.%d-%d.%d" % (a + b) for a, b in runs())
# "2.7 and 3.6 to 3.15", as the README's requirements say it
SPAN_WORDS = " and ".join("%d.%d" % a if a == b else "%d.%d to %d.%d" % (a + b)
                          for a, b in runs())


def sid_versions():
    """[(3, minor)] of the python3.X packages test/sid-root.sh installs."""
    with open(os.path.join(ROOT, "test", "sid-root.sh")) as f:
        pkgs = re.search(r"^pkgs=(\S+)", f.read(), re.M).group(1)
    return [(3, int(m)) for m in re.findall(r"(?:^|,)python3\.(\d+)(?=,|$)", pkgs)]


SID_VERSIONS = sid_versions()

_WRAPPER = """#!/bin/sh
# python%(v)s of the Debian sid root %(root)s (test/pythons.py)
exec unshare -m --propagation slave sh -c '
r=$0 repo=$1; shift
mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" &&
mount --bind "$repo" "$r$repo" && mount --rbind /tmp "$r/tmp" &&
exec chroot "$r" /bin/sh -c "cd \\"\\$0\\" 2>/dev/null || cd /; exec /usr/bin/python%(v)s \\"\\$@\\"" "$PWD" "$@"
' %(qroot)s %(qrepo)s "$@"
"""
_wrappers = []


def _cleanup():
    for d in _wrappers:
        shutil.rmtree(d, ignore_errors=True)


def sid_pythons():
    """[(label, wrapper path)] for the sid root's interpreters, and
    [reason] for each one missing."""
    found, missing = [], []
    have = [v for v in SID_VERSIONS
            if os.path.exists(os.path.join(SID_ROOT, "usr/bin/python%d.%d" % v))]
    for v in SID_VERSIONS:
        if v not in have:
            missing.append("sid-%d.%d: no Debian sid root with python%d.%d at %s "
                           "(build it with: %s)" % (v + v + (SID_ROOT, SID_BUILD)))
    if not have:
        return found, missing
    os.makedirs(SID_ROOT + ROOT, exist_ok=True)
    d = tempfile.mkdtemp(prefix="covinject-sid-")
    if not _wrappers:
        atexit.register(_cleanup)
    _wrappers.append(d)
    for v in have:
        path = os.path.join(d, "python%d.%d" % v)
        with open(path, "w") as f:
            f.write(_WRAPPER % {"v": "%d.%d" % v, "root": SID_ROOT,
                                 "qroot": shlex.quote(SID_ROOT), "qrepo": shlex.quote(ROOT)})
        os.chmod(path, 0o755)
        found.append(("sid-%d.%d" % v, path))
    return found, missing
