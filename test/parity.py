"""Parity tests: covinject records the same lines as coverage.py for the same
execution (README, "Limits and known differences").

The corpus (test/targets/corpus.py and corpus_*.py) is run twice or more per
interpreter: once with covinject attached after READY, and once per oracle,
where the program measures itself from the same point (parity_oracle.py):
coverage.py 6.5 from Debian's package on every interpreter (started before
the corpus is set up; only its dynamic context "live", which begins at the
"go" command, is compared), and on 3.12+ also sys.monitoring LINE events set
at "go".  Executed lines are compared per file.  Lines tagged "# @diff-KEY"
differ for a documented reason; EXPECT says which side records them.
"""
import json
import os
import re
import select
import subprocess
import time

import coverage

from lib import (COVINJECT, TARGETS, Failure, Skip, Target, check, cli, cli_ok,
                 probes_used, py_version, tagged, wait_for)

CORPUS = ["corpus.py", "corpus_lib.py", "corpus_38.py", "corpus_310.py", "corpus_311.py",
          "corpus_314.py", "corpus_exec_src.py", "corpus_nopyc.py",
          "corpus27.py", "corpus27_lib.py"]
IMPORTED = ["corpus_lib", "corpus_38", "corpus_310", "corpus_311", "corpus_314", "corpus_nopyc",
            "corpus27_lib"]
LATE_DELAY = "1.5"      # > the 1 s sweep that gives C threads the tracer (<= 3.11)


def expect(key, kind, ver, probes=False):
    """Who records the lines tagged @diff-KEY: 'covinject', 'oracle', 'both'
    or 'neither'.  kind: the oracle (coverage, monitoring, and their -branch
    forms, which compare the lines of arc data); probes: covinject ran
    with --collector probe (3.9-3.11)."""
    new = ver >= (3, 12)
    # coverage.py on 3.14+ is the sid root's 7.16, whose default core is
    # sys.monitoring (parity_oracle.py refuses to run with another)
    sysmon = kind.startswith("monitoring") or ver >= (3, 14)
    if key in ("cthread", "cthread-late"):
        # coverage.py (sys.settrace, threading.settrace) never traces threads
        # started with _thread.start_new_thread; covinject's sweep (<= 3.11)
        # or sys.monitoring (3.12+) does.
        return "both" if sysmon else "covinject"
    if key == "cthread-late-first":
        # The line running when covinject's sweep reached the thread (<= 3.11).
        # Probes record it if their pass after start moved the thread's
        # function onto its probed copy before the thread began (a race).
        if sysmon:
            return "both"
        if probes:
            return ("covinject", "neither")
        return "covinject" if new else "neither"
    if key == "resumed":
        # A coroutine suspended in another thread before "go" and resumed
        # after it: coverage.py's Python tracer (3.12+ here) sometimes files
        # its lines under the context before the switch (a race between the
        # switch's flush and the other thread's tracer, seen once under
        # load), so they may be missing from the oracle's "go" context.
        return ("both", "covinject") if kind.startswith("coverage") else "both"
    if key == "annotate":
        # A line only an annotation holds (a dataclass field without a
        # default): on 3.14+ (PEP 649) it runs in the class's __annotate__
        # function when dataclasses reads the annotations, which
        # coverage.py 7.x's sysmon core never measures ("type annotation
        # code objects don't execute", coverage/sysmon.py); before 3.14 the
        # class body runs it.
        return "covinject" if ver >= (3, 14) and not kind.startswith("monitoring") else "both"
    if key == "running":
        # A line a frame was running when measuring began (a blocked call, a
        # suspended yield): no line event follows, but in arc data
        # coverage.py counts it as the start of the arc to the next line.
        # coverage.py 7.x's sysmon core (3.14+) counts it only as the start
        # of an exit arc, when the frame returns from it (PY_RETURN).  The
        # arc is recorded when the frame resumes, in its own thread (the
        # corpus's asyncio loop): the race of "resumed" below can file it
        # under the context before the switch (seen once on 3.13.0 under
        # load), so the oracle may miss it.
        if kind == "coverage-branch":
            return ("oracle", "neither")
        return "neither"
    if key == "exit-arc":
        # coverage.py 7.16's sysmon core records the return of the
        # three-line conditional lambda at line 66 as the arc (64, -66),
        # from the line of the dict that holds it, which ran only at import.
        return "oracle" if kind == "coverage-branch" and ver >= (3, 14) else "neither"
    raise KeyError(key)


# ---- running the corpus ------------------------------------------------------

def line_from(t, prefix, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([t.proc.stdout], [], [], left)[0]:
            raise Failure("corpus: no %s line within %.0f s" % (prefix, timeout))
        line = t.proc.stdout.readline()
        if not line:
            raise Failure("corpus exited: %s" % t.proc.stderr.read()[-2000:])
        if line.startswith(prefix):
            return line


def finish(t):
    t.send("quit")
    out, err = t.proc.communicate(timeout=20)
    check(t.proc.returncode == 0 and not err, "corpus exited %s: %s" % (
        t.proc.returncode, err[-2000:]))


def corpus_env(tmp):
    """.pyc files written (and read) under tmp, whatever PYTHONDONTWRITEBYTECODE
    says: the import context then reads them, as in production."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=os.path.join(tmp, "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_attached(exe, tmp, *start_args, late=LATE_DELAY):
    """The corpus with covinject attached after READY: (data file, DONE line)."""
    t = Target(exe, corpus_script(exe), "--late-delay", late, env=corpus_env(tmp))
    cli_ok("start", "-o", tmp, *(start_args + (t.pid,)))
    t.send("go")
    done = line_from(t, "DONE")
    path = cli_ok("stop", t.pid).strip()
    finish(t)
    return path, done


def run_oracle(exe, tmp, kind):
    out = os.path.join(tmp, "oracle-" + kind)
    t = Target(exe, corpus_script(exe), "--oracle", "%s:%s" % (kind, out),
               env=corpus_env(tmp))
    t.send("go")
    done = line_from(t, "DONE")
    finish(t)
    return out, done


# ---- reading what was recorded ------------------------------------------------

def corpus_path(name):
    return os.path.realpath(os.path.join(TARGETS, name))


def lines_of(path, context=None):
    """{corpus file name: set of lines} from a coverage.py data file."""
    data = coverage.CoverageData(path)
    data.read()
    if context is not None:
        data.set_query_context(context)
    return {n: set(data.lines(corpus_path(n)) or ()) for n in CORPUS}


def lines_of_json(path):
    with open(path) as f:
        raw = json.load(f)
    return {n: set(raw.get(corpus_path(n), ())) for n in CORPUS}


def tags(prefix="diff-"):
    """{file name: {line: key}} for every '# @PREFIXKEY' tag of the corpus."""
    out = {}
    for n in CORPUS:
        out[n] = {}
        with open(os.path.join(TARGETS, n)) as f:
            for i, line in enumerate(f, 1):
                m = re.search(r"#\s+@%s([\w-]*)\s*$" % prefix, line)
                if m:
                    out[n][i] = m.group(1)
    return out


def source_line(name, n):
    with open(os.path.join(TARGETS, name)) as f:
        lines = f.read().splitlines()
    return lines[n - 1].strip() if 0 < n <= len(lines) else "?"


def applies(name, ver):
    """corpus_3XX.py runs on 3.XX and later only; corpus27*.py, a corpus of
    its own, on 2.7 only, the rest on 3.x."""
    if name.startswith("corpus27"):
        return ver < (3, 0)
    m = re.match(r"corpus_3(\d+)\.py$", name)
    return ver >= (3, 0) and (not m or ver >= (3, int(m.group(1))))


def corpus_script(exe):
    return "corpus27.py" if py_version(exe) < (3, 0) else "corpus.py"


def compare(ours, theirs, kind, ver, probes=False):
    """Differences not explained by a tag, as readable lines."""
    problems = []
    tagged = tags()
    for name in filter(lambda n: applies(n, ver), CORPUS):
        a, b = ours[name], theirs[name]
        for n in sorted(a | b):
            side = {(True, True): "both", (True, False): "covinject",
                    (False, True): "oracle"}[(n in a, n in b)]
            key = tagged[name].get(n)
            want = expect(key, kind, ver, probes) if key else "both"
            if side not in (want if isinstance(want, tuple) else (want,)):
                problems.append("%s:%d %s: recorded by %s, expected %s  | %s" % (
                    name, n, key or "", side, want, source_line(name, n)))
        for n, key in tagged[name].items():
            want = expect(key, kind, ver, probes)
            if n not in a | b and "neither" not in (want if isinstance(want, tuple) else (want,)):
                problems.append("%s:%d %s: recorded by neither, expected %s" % (
                    name, n, key, want))
    return problems


def arcs_of(path, context):
    """{corpus file name: set of arcs} from a coverage.py data file."""
    data = coverage.CoverageData(path)
    data.read()
    data.set_query_context(context)
    return {n: set(data.arcs(corpus_path(n)) or ()) for n in CORPUS}


def arcs_of_json(path):
    with open(path) as f:
        raw = json.load(f)
    return {n: set(map(tuple, raw.get(corpus_path(n), ()))) for n in CORPUS}


def positive_ends(arcs):
    return {n: {l for a in v for l in a if l > 0} for n, v in arcs.items()}


def branch_analysis(path, context, names, exe=None, tmp=None):
    """{name: (missing statements, {line: missing exits})}, as coverage.py's
    report computes them from the data of one context: the host's 6.5, or
    with exe, the coverage.py of that interpreter (sid's 7.16 on 3.14+,
    whose analysis knows how that coverage.py records arcs)."""
    if exe:
        raw = json.loads(oracle_program(exe, tmp, "analysis", path, context,
                                        *[corpus_path(n) for n in names]))
        return {n: (set(raw[corpus_path(n)][0]),
                    {int(k): v for k, v in raw[corpus_path(n)][1].items()}) for n in names}
    cov = coverage.Coverage(data_file=path, config_file=False)
    cov.load()
    cov.get_data().set_query_contexts(["^%s$" % context])
    out = {}
    for n in names:
        an = cov._analyze(corpus_path(n))
        out[n] = (set(an.missing), {k: sorted(v) for k, v in an.missing_branch_arcs().items()})
    return out


def oracles(ver):
    """coverage.py where Debian's 6.5 runs (3.7+), else a plain
    sys.settrace tracer; and sys.monitoring on 3.12+."""
    return (["coverage"] if ver >= (3, 7) else ["settrace"]) + \
        (["monitoring"] if ver >= (3, 12) else [])


# ---- tests --------------------------------------------------------------------

def t_parity_lines(exe, tmp):
    """The corpus's executed lines equal coverage.py's (and, on 3.12+, raw
    sys.monitoring's) for the same execution, but for the tagged lines."""
    parity_lines(exe, tmp)


def parity_lines(exe, tmp, *start_args):
    ver = py_version(exe)
    path, done = run_attached(exe, tmp, *start_args)
    ours = lines_of(path, "")
    lib = "corpus27_lib.py" if ver < (3, 0) else "corpus_lib.py"
    check(ours[lib], "nothing recorded for %s" % lib)
    problems = []
    for kind in oracles(ver):
        out, their_done = run_oracle(exe, tmp, kind)
        check(their_done == done, "the corpus behaved differently under covinject "
              "and under the %s oracle" % kind)
        theirs = lines_of(out, "live") if kind == "coverage" else lines_of_json(out)
        problems += ["[%s] %s" % (kind, p) for p in compare(
            ours, theirs, kind, ver, "probe" in start_args or (probes_used(exe) and "trace" not in start_args))]
    check(not problems, "%d difference(s):\n    %s" % (len(problems),
                                                    "\n    ".join(problems)))


def oracle_program(exe, tmp, *args):
    r = subprocess.run([exe, os.path.join(TARGETS, "parity_oracle.py")] + list(args),
                       capture_output=True, text=True, timeout=60, cwd=TARGETS,
                       env=corpus_env(tmp))
    check(r.returncode == 0, "parity_oracle.py %s: %s" % (args[0], r.stderr[-2000:]))
    return r.stdout


def t_import_context(exe, tmp):
    """Modules imported before start get the lines their import ran, derived
    from their code, in the context "import": from the .pyc when it matches,
    else compiled from the source without a warning reaching the target's
    stderr (corpus_nopyc.py, "\\d" on 3.12+).  They equal a Python model of
    the rule, and what coverage.py records for a plain import of the same
    modules, but for lines that did not run (tagged @import-not-run) and for
    function bodies called during the import."""
    ver = py_version(exe)
    path, _ = run_attached(exe, tmp, late="0")
    ours = lines_of(path, "import")
    names = [n for n in CORPUS if n != "corpus_exec_src.py" and applies(n, ver)]
    model = json.loads(oracle_program(exe, tmp, "model", *[corpus_path(n) for n in names]))
    problems = []
    for n in names:
        want = set(model[corpus_path(n)])
        if ours[n] != want:
            problems.append("%s: import context %s, the model says %s more, %s less" % (
                n, len(ours[n]), sorted(want - ours[n]), sorted(ours[n] - want)))
    data = os.path.join(tmp, "imports.coverage")
    mods = [m for m in IMPORTED if m + ".py" in names]
    oracle_program(exe, tmp, "imports", data, *mods)
    ran = lines_of(data, "") if ver >= (3, 7) else lines_of_json(data)
    not_run = tags("import-not-run")
    for m in mods:
        n = m + ".py"
        want = (ran[n] & set(model[corpus_path(n)])) | set(not_run[n])
        if ours[n] != want:
            problems.append("%s: import context vs coverage.py's import: missing %s, "
                            "extra %s" % (n, sorted(want - ours[n]), sorted(ours[n] - want)))
    check(not problems, "\n    ".join(problems))


def t_parity_branch(exe, tmp):
    """start --branch (3.12+): the arcs equal those the same rule gives,
    written independently in Python over sys.monitoring (parity_oracle.py);
    and the report coverage.py makes of them (missing lines, missing
    branches) equals the one it makes of its own branch measurement of the
    same execution, but for tagged lines.  On 3.9-3.11 --branch is refused,
    naming the version, and the target is untouched."""
    ver = py_version(exe)
    if ver < (3, 12):
        t = Target(exe, "idle.py")
        r = cli("start", "--branch", "-o", tmp, t.pid)
        lines = r.stderr.strip().splitlines()
        check(r.returncode == 1 and len(lines) == 1 and re.search(
            r"^covinject: start %d: --branch is not supported on Python %d\.%d" % (
                (t.pid,) + ver), lines[0]), "start --branch: %d %r" % (r.returncode, r.stderr))
        check(t.alive() and not t.payload_mapped(), "the target was touched")
        return
    path, done = run_attached(exe, tmp, "--branch")
    ours = arcs_of(path, "")
    out, their_done = run_oracle(exe, tmp, "monitoring-branch")
    check(their_done == done, "the corpus behaved differently under the oracle")
    theirs = arcs_of_json(out)
    problems = ["%s: arcs only covinject has %s, only the Python rule has %s" % (
        n, sorted(ours[n] - theirs[n]), sorted(theirs[n] - ours[n]))
        for n in CORPUS if ours[n] != theirs[n]]
    out, their_done = run_oracle(exe, tmp, "coverage-branch")
    check(their_done == done, "the corpus behaved differently under coverage.py")
    problems += ["[coverage-branch] " + p for p in compare(
        positive_ends(ours), lines_of(out, "live"), "coverage-branch", ver)]
    names = [n for n in CORPUS if ours[n]]
    own = (exe, tmp) if ver >= (3, 14) else ()
    a, b = branch_analysis(path, "", names, *own), branch_analysis(out, "live", names, *own)
    allowed = tags("branchdiff-")
    for n in names:
        for line in sorted(set(a[n][1]) | set(b[n][1])):
            mine, cov = a[n][1].get(line, []), b[n][1].get(line, [])
            if line in allowed[n]:      # documented: covinject may claim more
                ok = set(mine) <= set(cov)
            else:
                ok = mine == cov or line in a[n][0] | b[n][0]
            if not ok:
                problems.append("%s:%d missing branches: covinject %s, coverage.py %s | %s" % (
                    n, line, mine, cov, source_line(n, line)))
    check(not problems, "%d difference(s):\n    %s" % (len(problems), "\n    ".join(problems)))


# ---- CPython's own test suites --------------------------------------------------

STDLIB_SUITES = ["test_csv", "test_pprint", "test_calendar", "test_shlex", "test_textwrap",
                 "test_doctest", "test_tomllib"]
# make test runs these; make test-long (COVINJECT_LONG) all of them
QUICK_SUITES = ["test_csv", "test_shlex", "test_doctest"]


def stdlib_of(exe):
    return subprocess.run([exe, "-c", "import os; print(os.path.dirname(os.__file__))"],
                          capture_output=True, text=True).stdout.strip()


def run_suites(exe, tmp, names, include, oracle):
    """The suites in a live process: covinject attached before they run, or
    coverage.py started in-process at the same point.  (data file, DONE line)"""
    out = os.path.join(tmp, "oracle-suites")
    t = Target(exe, "stdlib_suites.py", ",".join(names),
               *(["oracle", out, include] if oracle else []), env=corpus_env(tmp))
    if not oracle:
        cli_ok("start", "--include", include, "--interval", "0", "-o", tmp, t.pid)
    t.send("go")
    done = line_from(t, "DONE", timeout=900)
    path = out if oracle else cli_ok("stop", t.pid).strip()
    t.send("quit")
    t.proc.communicate(timeout=30)
    return path, done


def t_parity_stdlib_suites(exe, tmp):
    """Some of CPython's own test suites (its `test` package; the ones this
    interpreter has) run in a live process, once with covinject attached
    before they run and once with coverage.py started in-process at the
    same point: every file's lines are the same (the suites' files, the
    modules they test, unittest, doctest, test.support: the whole stdlib
    directory).  test_doctest runs doctests that drive pdb, so it saves,
    removes and restores the trace function many times."""
    if probes_used(exe):
        raise Skip("not with probes: the suites run differently where no trace "
                   "function is set (test_doctest defines its pdb tests only then), "
                   "and the oracle sets one")
    if py_version(exe) >= (3, 14):
        raise Skip("not yet on 3.14+: its oracle is Debian 12's coverage.py 6.5, "
                   "and the sid root has no test suites")
    if py_version(exe) < (3, 7):
        raise Skip("not on %d.%d: its oracle is coverage.py 6.5, whose Python tracer "
                   "needs frame.f_trace_lines (3.7+); there parity_lines compares "
                   "the corpus with a sys.settrace tracer" % py_version(exe))
    stdlib = stdlib_of(exe)
    wanted = STDLIB_SUITES if os.environ.get("COVINJECT_LONG") else QUICK_SUITES
    if py_version(exe) >= (3, 12):
        # Not test_doctest on 3.12+: under coverage.py 6.5's Python tracer
        # it runs 2 tests fewer than with covinject (3.12.1), and on 3.13.0
        # two of its pdb doctests fail with covinject attached (README,
        # "Parity with coverage.py").
        wanted = [n for n in wanted if n != "test_doctest"] + ["test_pprint"] * (
            "test_pprint" not in wanted)
    names = [n for n in wanted if os.path.exists(os.path.join(stdlib, "test", n + ".py")) or
             os.path.isdir(os.path.join(stdlib, "test", n))]
    if not names:
        raise Skip("%s has no test suites in %s/test (Debian: libpython3.X-testsuite)"
                   % (exe, stdlib))
    include = os.path.realpath(stdlib) + "/*"
    ours_path, done = run_suites(exe, tmp, names, include, oracle=False)
    theirs_path, their_done = run_suites(exe, tmp, names, include, oracle=True)
    check(done == their_done, "the suites ran differently: %r under covinject, %r under "
          "coverage.py" % (done, their_done))
    ours, theirs = (coverage.CoverageData(p) for p in (ours_path, theirs_path))
    ours.read()
    theirs.read()
    ours.set_query_context("")
    files = sorted(set(ours.measured_files()) | set(theirs.measured_files()))
    problems, explained, misfiled, nlines = [], [], [], 0
    for f in files:
        a, b = set(ours.lines(f) or ()), set(theirs.lines(f) or ())
        b.discard(0)    # coverage.py's C tracer on 3.11: "line 0" of an empty module
        b -= oracle_stop_lines(f)
        nlines += len(a | b)
        if b - a - raw_statements(f):
            misfiled.append(f)
        if a != b:
            what = "%s: only covinject %s, only coverage.py %s" % (
                f, sorted(a - b)[:20], sorted(b - a)[:20])
            (explained if f.endswith(DESYNC_FILES) else problems).append(what)
    if explained and not misfiled:
        problems += explained       # the explanation needs its evidence
    print("  stdlib suites %s: %s; %d files, %d lines, %d differ (%d in the test runner "
          "and debugger frames, where coverage.py filed lines that cannot run under %s)" % (
              ",".join(names), done.strip(), len(files), nlines,
              len(problems) + len(explained), len(explained),
              ", ".join(os.path.basename(f) for f in misfiled) or "no file"), flush=True)
    check(len(files) > 5, "only %d files measured" % len(files))
    check(not problems, "%d file(s) differ:\n    %s" % (len(problems), "\n    ".join(problems)))


# coverage.py 6.5 keeps a stack of per-frame state (which file, last line)
# pushed at each call event and popped at each return: the returns it never
# saw while the trace function was removed (bdb's set_continue, inside a
# doctest that restores it at its end) leave that stack wrong, and it files
# the lines of the frames above under other files, or drops them.  covinject
# looks the file up from each event's frame.  Only these files (the frames
# on the stack above test_doctest's pdb doctests) may differ, and only when
# coverage.py's own data shows the misfiling (lines that cannot run in the
# file it filed them under).
DESYNC_FILES = ("/unittest/runner.py", "/unittest/suite.py", "/unittest/case.py",
                "/doctest.py", "/bdb.py")


def oracle_stop_lines(path):
    """The body of threading.settrace, which coverage.py's own stop() runs
    while its tracer is still on: the oracle's, not the suites'."""
    if not path.endswith("/threading.py"):
        return set()
    with open(path) as f:
        return {n for n, line in enumerate(f, 1) if line.strip() == "_trace_hook = func"}


def raw_statements(path):
    """The lines of path that can start a line event, by coverage.py's parser."""
    from coverage.parser import PythonParser
    try:
        p = PythonParser(filename=path)
        p.parse_source()
        return set(p.raw_statements)
    except Exception:
        return set(range(1, 100000))


E2E = [t_parity_lines, t_import_context, t_parity_branch, t_parity_stdlib_suites]


# ---- scope: --source, --include, --omit as coverage.py applies them -----------

SCOPE_FILES = {
    "main.py": """import json, os, sys, types
import pkg, pkg.core, pkg.sub.deep, other, tests.test_x
BEFORE = dict(sys.modules)


def work():
    pkg.v(); pkg.core.f(); pkg.sub.deep.g(); other.h(); tests.test_x.t()
    json.loads(json.dumps({"a": [1, 2]}, indent=1, sort_keys=True))
    import late
    late.k()


def decisions(cov):
    # coverage.py's own decision for every module imported before the start;
    # "named_outside": named inside the stdlib or an installed-packages dir
    stdlib = os.path.dirname(os.__file__)
    out = {}
    for mod in BEFORE.values():
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and f.endswith(".py"):
            disp = cov._inorout.should_trace(os.path.realpath(f),
                                             types.SimpleNamespace(f_globals=mod.__dict__))
            out[os.path.realpath(f)] = [disp.trace, f.startswith(stdlib + "/") or
                                        "-packages/" in f]
    return out


print("READY", flush=True)
sys.stdin.readline()
cov = None
if len(sys.argv) > 1:
    sys.path.append("/usr/lib/python3/dist-packages")
    import coverage
    cov = coverage.Coverage(data_file=sys.argv[1], config_file=False,
                            **json.loads(sys.argv[2]))
    cov.start()
work()
if cov:
    cov.stop()
    cov.save()
    with open(sys.argv[1] + ".json", "w") as f:
        json.dump(decisions(cov), f)
print("DONE", flush=True)
sys.stdin.readline()
""",
    "pkg/__init__.py": "def v():\n    return 1\n",
    "pkg/core.py": "def f():\n    return 1\n",
    "pkg/sub/__init__.py": "def s():\n    return 2\n",
    "pkg/sub/deep.py": "from pkg.sub import s\n\n\ndef g():\n    return s()\n",
    "other.py": "def h():\n    return 3\n",
    "tests/__init__.py": "def nothing():\n    pass\n",
    "tests/test_x.py": "def t():\n    return 4\n",
    "late.py": "def k():\n    return 5\n",
}

# (covinject start options, coverage.Coverage keyword arguments); relative
# names resolve against the app directory, the cwd of both.
SCOPES = [
    ([], {}),
    (["--source", "pkg"], {"source": ["pkg"]}),
    (["--source", "pkg.sub"], {"source": ["pkg.sub"]}),
    (["--source", "json"], {"source": ["json"]}),
    (["--source", "late", "--source", "tests"], {"source": ["late", "tests"]}),
    (["--include", "*/pkg/*", "--omit", "*/sub/*"], {"include": ["*/pkg/*"], "omit": ["*/sub/*"]}),
    (["--include", "pkg/*,other.py"], {"include": ["pkg/*", "other.py"]}),
    (["--include", "*/app/[!m]?[th]*", "--omit", "pkg/core.py"],
     {"include": ["*/app/[!m]?[th]*"], "omit": ["pkg/core.py"]}),
    (["--omit", "*tests*,*/json/*"], {"omit": ["*tests*", "*/json/*"]}),
    (["--source", ".", "--omit", "pkg/sub/*"], {"source": ["."], "omit": ["pkg/sub/*"]}),
]


def make_app(tmp):
    app = os.path.join(tmp, "app")
    for name, text in SCOPE_FILES.items():
        os.makedirs(os.path.dirname(os.path.join(app, name)), exist_ok=True)
        with open(os.path.join(app, name), "w") as f:
            f.write(text)
    return os.path.realpath(app)


def app_run(exe, app, args):
    """The app started (and registered to be killed), waiting for "go"."""
    p = subprocess.Popen([exe, os.path.join(app, "main.py")] + args, cwd=app,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    t = Target.adopt(p)
    check(p.stdout.readline().startswith("READY"), "the app did not start")
    return t


def measured_sets(path):
    """(files with lines that ran, files with import lines) of a data file."""
    data = coverage.CoverageData(path)
    data.read()
    out = []
    for ctx in ("", "import"):
        data.set_query_context(ctx)
        out.append({f for f in data.measured_files() if data.lines(f)})
    return out


def third_party(path):
    return "/site-packages/" in path or "/dist-packages/" in path


def t_scope_like_coverage(tmp):
    """With --source DIR, --source PACKAGE, --include and --omit, covinject
    measures the files coverage.py measures with the same options, side by
    side on the same program: the files that ran after the start, and
    coverage.py's own decision (should_trace) for every module imported
    before it, which are the files of the import context.  One documented
    rule differs: by default covinject leaves out every site-packages or
    dist-packages directory and files the interpreter names in the stdlib
    (coverage.py 6.5 on Debian measures /usr/lib/python3/dist-packages)."""
    exe = "/usr/bin/python3"
    app = make_app(tmp)
    rel = lambda files: sorted(os.path.relpath(f, app) for f in files)
    problems = []
    for i, (opts, kwargs) in enumerate(SCOPES):
        name = " ".join(opts) or "(defaults)"
        out = os.path.join(tmp, "out%d" % i)
        os.mkdir(out)
        t = app_run(exe, app, [])
        r = subprocess.run([COVINJECT, "start", "-o", out] + opts + [str(t.pid)],
                           capture_output=True, text=True, cwd=app)
        check(r.returncode == 0, "start %s: %s" % (name, r.stderr))
        t.send("go")
        line_from(t, "DONE")
        ours, imported = measured_sets(cli_ok("stop", t.pid).strip())
        t.kill()
        data = os.path.join(out, "coverage.data")
        t = app_run(exe, app, [data, json.dumps(kwargs)])
        t.send("go")
        line_from(t, "DONE")
        t.kill()
        theirs = measured_sets(data)[0]
        with open(data + ".json") as f:
            decided = json.load(f)
        if not kwargs.get("source") and not kwargs.get("include"):
            theirs = {f for f in theirs if not third_party(f)}
            decided = {f: d for f, d in decided.items() if not third_party(f) and not d[1]}
        want_imported = {f for f, d in decided.items() if d[0]}
        if ours != theirs:
            problems.append("%s: covinject measured %s, coverage.py %s" % (
                name, rel(ours), rel(theirs)))
        if imported != want_imported:
            problems.append("%s: import context in %s, coverage.py would measure %s" % (
                name, rel(imported), rel(want_imported)))
    check(not problems, "\n    ".join(problems))


# ---- compatibility: coverage.py's commands, and a test suite's data file -----

COMPAT_FILES = {
    "shop.py": """def tested():
    return 1


def production_only():
    return 2


def neither():
    return 3
""",
    "test_shop.py": "import shop\nassert shop.tested() == 1\n",
    "server.py": """import sys
import shop
print("READY", flush=True)
sys.stdin.readline()
shop.production_only()
shop.tested()
print("DONE", flush=True)
sys.stdin.readline()
""",
}


def coverage_cmd(cwd, datafile, *args):
    env = dict(os.environ, COVERAGE_FILE=datafile)
    r = subprocess.run(["/usr/bin/python3", "-m", "coverage"] + list(args), cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "coverage %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def t_compat_reports(tmp):
    """Our data files work with every coverage.py command (combine, report,
    html, xml, json, lcov), and combine with a test suite's .coverage: with
    contexts, each line says whether tests, production (""), or the import
    of a module loaded before start ran it (the README's example)."""
    import xml.etree.ElementTree as ET
    app = os.path.join(tmp, "app")
    os.mkdir(app)
    for name, text in COMPAT_FILES.items():
        with open(os.path.join(app, name), "w") as f:
            f.write(text)
    suite = os.path.join(tmp, ".coverage")
    coverage_cmd(app, suite, "run", "--context=tests", "test_shop.py")
    live = os.path.join(tmp, "live")
    os.mkdir(live)
    p = subprocess.Popen(["/usr/bin/python3", "server.py"], cwd=app, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    t = Target.adopt(p)
    check(p.stdout.readline().startswith("READY"), "server.py did not start")
    cli_ok("start", "-o", live, t.pid)
    t.send("go")
    line_from(t, "DONE")
    ours = cli_ok("stop", t.pid).strip()
    # our file alone, through every reporter
    check("shop.py" in coverage_cmd(tmp, ours, "report", "-m"), "report lacks shop.py")
    coverage_cmd(tmp, ours, "html", "-d", os.path.join(tmp, "html1"))
    coverage_cmd(tmp, ours, "xml", "-o", os.path.join(tmp, "c.xml"))
    names = [c.get("filename") for c in ET.parse(os.path.join(tmp, "c.xml")).iter("class")]
    check(any(os.path.basename(n) == "shop.py" for n in names), "xml classes: %s" % names)
    coverage_cmd(tmp, ours, "json", "-o", os.path.join(tmp, "c.json"))
    with open(os.path.join(tmp, "c.json")) as f:
        files = json.load(f)["files"]      # names relative to the cwd
    check(any(os.path.basename(n) == "shop.py" for n in files), "json report: %s" % list(files))
    coverage_cmd(tmp, ours, "lcov", "-o", os.path.join(tmp, "c.lcov"))
    with open(os.path.join(tmp, "c.lcov")) as f:
        check("SF:" in f.read(), "lcov report without a source file")
    # combined with the test suite's data: who ran what
    coverage_cmd(tmp, suite, "combine", "--append", "--keep", live)
    coverage_cmd(tmp, suite, "json", "--show-contexts", "-o", os.path.join(tmp, "all.json"))
    with open(os.path.join(tmp, "all.json")) as f:
        files = json.load(f)["files"]
    got = {int(k): set(v) for n in files if os.path.basename(n) == "shop.py"
           for k, v in files[n]["contexts"].items()}
    want = {1: {"import", "tests"}, 2: {"", "tests"}, 5: {"import", "tests"},
            6: {""}, 9: {"import", "tests"}}
    check(got == want, "contexts of shop.py lines: %s, expected %s" % (got, want))
    coverage_cmd(tmp, suite, "html", "--show-contexts", "-d", os.path.join(tmp, "html2"))
    page = [n for n in os.listdir(os.path.join(tmp, "html2"))
            if n.endswith("shop_py.html") and not n.endswith("test_shop_py.html")]
    with open(os.path.join(tmp, "html2", page[0])) as f:
        html = f.read()
    for label in ("(empty)", "import", "tests"):
        check(label in html, "html --show-contexts does not show %r" % label)


# ---- the other new start options ------------------------------------------------

def contexts_of(path):
    data = coverage.CoverageData(path)
    data.read()
    return data.measured_contexts()


def one_line_error(args, status, pattern):
    r = cli(*args)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == status and len(lines) == 1 and re.search(pattern, lines[0]),
          "covinject %s: exit %d, %r" % (" ".join(map(str, args)), r.returncode, r.stderr))


def t_start_options(tmp):
    """--no-import-lines; a --source package the target cannot find fails
    start with its name, and start works afterwards; empty patterns and a
    file as --source are refused; --branch data (newest interpreter 3.12+)
    is arcs, and after dump --reset the re-armed branches report again."""
    from lib import discover
    t = Target("/usr/bin/python3", "busy.py")
    cli_ok("start", "--no-import-lines", "-o", tmp, t.pid)
    path = cli_ok("stop", t.pid).strip()
    check(contexts_of(path) == {""}, "--no-import-lines: contexts %s" % contexts_of(path))
    one_line_error(["start", "--source", "no_such_pkg_xyz", "-o", tmp, t.pid], 1,
                   r"^covinject: start %d: .*--source no_such_pkg_xyz: no directory and "
                   r"no module of that name" % t.pid)
    cli_ok("start", "-o", tmp, t.pid)
    path = cli_ok("stop", t.pid).strip()
    check(contexts_of(path) == {"", "import"}, "contexts %s" % contexts_of(path))
    busy = os.path.join(TARGETS, "busy.py")
    one_line_error(["start", "--source", busy, "-o", tmp, t.pid], 1,
                   r"--source .*busy\.py: not a directory")
    for opt in ("--include", "--omit"):
        one_line_error(["start", opt, "", "-o", tmp, t.pid], 2, r"%s needs a pattern" % opt)
    check(t.alive(), "target died")
    newest = [(v, exe) for _, exe, v in discover()[0] if v >= (3, 12)]
    if not newest:
        return
    t = Target(max(newest)[1], "busy.py")
    cli_ok("start", "--branch", "--interval", "0", "-o", tmp, t.pid)
    inc, test, flush = sorted(tagged("busy.py", "w"))
    loop = {(inc, test), (test, inc - 1), (test, flush)}    # if -> while, if -> flush

    def arcs_now():
        p = cli_ok("dump", t.pid).strip()
        data = coverage.CoverageData(p)
        data.read()
        return data.has_arcs() and loop <= set(data.arcs(os.path.realpath(busy)) or ())
    wait_for(arcs_now, "the busy loop's arcs")
    first = cli_ok("dump", "--reset", t.pid).strip()
    wait_for(arcs_now, "the busy loop's arcs again after dump --reset")
    second = cli_ok("stop", t.pid).strip()
    check(second != first and contexts_of(second) == {"", "import"},
          "after --reset: %s, contexts %s" % (second, contexts_of(second)))


SYSTEM = [("scope like coverage.py [system]", t_scope_like_coverage),
          ("start options [system]", t_start_options),
          ("coverage.py reports and a test suite's data [system]", t_compat_reports)]
