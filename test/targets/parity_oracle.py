"""The reference measurements of the parity tests (test/parity.py).

The corpus (corpus.py) imports this module first and calls open_oracle()
with its command line.  Without --oracle it returns a no-op: covinject
attaches from outside.  With --oracle KIND:FILE it starts a reference that
records the lines run between begin() (the "go" command, the point where
covinject would attach) and end():

  coverage   coverage.py itself (Debian's python3-coverage, imported from
             /usr/lib/python3/dist-packages when the interpreter does not
             have it: 6.5 on the host, its C tracer on 3.11, its pure-Python
             tracer on 3.9/3.10/3.12/3.13; 7.16 in the sid root, its
             sys.monitoring core on 3.14/3.15).  It is started here, before
             the corpus is set up, and begin() switches to the dynamic
             context "live": only that context is compared.  coverage.py
             started later could not see frames already running in other
             threads (sys.settrace and threading.settrace only reach new
             frames and new threads; the sysmon core decides per code
             object at its PY_START), so this is the fair way to ask
             "which lines that ran after the point would coverage.py
             report".  KIND coverage-branch measures arcs too.
  settrace   a plain sys.settrace line tracer, for 2.7 and 3.6, where
             coverage.py 6.5 does not run (it needs f_trace_lines, 3.7):
             set here, for this thread and with threading.settrace for
             threads started later, as coverage.py's Python tracer is, and
             recording "line" events from begin() on.
  monitoring sys.monitoring LINE events (3.12+), set globally at begin():
             every thread, frames already running included, like covinject;
             with PY_START as coverage.py's sysmon core has it (on 3.13 a
             LINE event is lost without it, seen on 3.13.0).

Run as a program, it serves test/parity.py with the target's interpreter:
  parity_oracle.py model FILE...        the lines covinject's import context
      should hold for each FILE: the line starts of the module's code and of
      its class bodies, recursively (payload/modules.c), as JSON
  parity_oracle.py imports DATA MODULE...   coverage.py measuring nothing but
      the import of each MODULE, into the data file DATA; on 3.6 the
      settrace tracer, into DATA as JSON
  parity_oracle.py analysis DATA CONTEXT FILE...   the missing lines and
      branches this interpreter's coverage.py reports of each FILE from the
      context CONTEXT of DATA, as JSON

Nothing here prints to stdout except through the corpus protocol.  It runs
on 2.7 too (corpus27.py).
"""
from __future__ import print_function

import json
import sys
import time

DEBIAN_COVERAGE = "/usr/lib/python3/dist-packages"
HERE = __file__.rsplit("/", 1)[0] + "/"


class NoOracle:
    def begin(self):
        pass

    def end(self):
        pass


def import_coverage():
    try:
        import coverage
    except ImportError:
        sys.path.append(DEBIAN_COVERAGE)
        import coverage
        sys.path.remove(DEBIAN_COVERAGE)
    return coverage


class CoverageOracle:
    """Started now, before the corpus is set up; begin() switches to the
    dynamic context "live".  coverage.py's sysmon core (7.9 and later on
    3.14+) returns DISABLE after a line's first event, so a line that ran
    before begin() would never reach "live": begin() re-arms every event
    with sys.monitoring.restart_events() (the collector clears its sets in
    place at the switch, so its per-code references stay valid), and
    coverage.py's warning that dynamic contexts may be incomplete with that
    core is turned off."""

    def __init__(self, path, branch):
        coverage = import_coverage()
        self.cov = coverage.Coverage(data_file=path, branch=branch, config_file=False)
        self.cov.set_option("run:disable_warnings", ["no-sysmon-context"])
        self.cov.start()
        self.sysmon = self.cov._collector.tracer_name() == "SysMonitor"
        if sys.version_info >= (3, 14) and not self.sysmon:
            raise SystemExit("coverage.py %s measures with %s on %s, not with "
                             "sys.monitoring" % (coverage.__version__,
                                                 self.cov._collector.tracer_name(),
                                                 sys.version.split()[0]))

    def begin(self):
        self.cov.switch_context("live")
        if self.sysmon:
            sys.monitoring.restart_events()

    def end(self):
        self.cov.stop()
        self.cov.save()


def coverage_runs():
    """Does Debian's coverage.py 6.5 run on this interpreter?"""
    return sys.version_info >= (3, 7)


class SettraceOracle:
    def __init__(self, path, live=False):
        import threading
        self.path, self.live, self.lines = path, live, {}
        self.threading = threading
        threading.settrace(self._trace)
        sys.settrace(self._trace)

    def _trace(self, frame, event, arg):
        if event == "line" and self.live:
            self.lines.setdefault(frame.f_code.co_filename, set()).add(frame.f_lineno)
        return self._trace

    def begin(self):
        self.live = True

    def end(self):
        sys.settrace(None)
        self.threading.settrace(None)
        self.live = False
        with open(self.path, "w") as f:
            json.dump({k: sorted(v) for k, v in self.lines.items()}, f)


class MonitoringOracle:
    TOOL = 4

    def __init__(self, path):
        self.path = path
        self.lines = {}

    def _line(self, code, line):
        self.lines.setdefault(code.co_filename, set()).add(line)
        return sys.monitoring.DISABLE

    def _start(self, code, offset):
        return sys.monitoring.DISABLE

    def begin(self):
        mon = sys.monitoring
        mon.use_tool_id(self.TOOL, "parity")
        mon.register_callback(self.TOOL, mon.events.LINE, self._line)
        mon.register_callback(self.TOOL, mon.events.PY_START, self._start)
        mon.set_events(self.TOOL, mon.events.LINE | mon.events.PY_START)

    def end(self):
        mon = sys.monitoring
        mon.set_events(self.TOOL, 0)
        mon.register_callback(self.TOOL, mon.events.LINE, None)
        mon.register_callback(self.TOOL, mon.events.PY_START, None)
        mon.free_tool_id(self.TOOL)
        with open(self.path, "w") as f:
            json.dump({k: sorted(v) for k, v in self.lines.items()}, f)


class MonitoringBranchOracle(MonitoringOracle):
    """sys.monitoring LINE, BRANCH and JUMP events (3.12+) turned into
    coverage.py arcs by the rule payload/arcs.c follows, written here
    independently with dis:
      (-n, n)            for every line n that ran (lines in arc data);
      (line, dest)       for each direction a conditional branch took, and
                         for each unconditional jump that ran;
      (line, next)       for each fall-through (and return: next = exit,
                         -co_firstlineno) between lines in the bytecode,
                         when its line ran, but from a loop's END_FOR or
                         POP_ITER, which only its FOR_ITER's exit reaches;
    where dest/next is the first line the bytecode reaches that is not the
    source's own line, following unconditional jumps."""

    STOP = ("FOR_ITER", "SEND", "RAISE_VARARGS", "RERAISE")
    JUMPS = ("JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
    RETURNS = ("RETURN_VALUE", "RETURN_CONST")
    LOOP_END = ("END_FOR", "POP_ITER")      # only a loop's end reaches them

    def __init__(self, path):
        super().__init__(path)
        self.codes = {}
        self.taken = set()      # (code, src offset, dst offset)

    def _line(self, code, line):
        if code.co_filename.startswith(HERE):
            self.codes.setdefault(code, set()).add(line)
        return sys.monitoring.DISABLE

    def _branch(self, code, src, dst):
        if not code.co_filename.startswith(HERE):
            return sys.monitoring.DISABLE
        self.taken.add((code, src, dst))

    def _jump(self, code, src, dst):
        if code.co_filename.startswith(HERE):
            self.taken.add((code, src, dst))
        return sys.monitoring.DISABLE

    def _dest(self, code, instrs, index, src_line, i):
        for _ in range(10000):
            if i is None or i >= len(instrs):
                return None
            ins = instrs[i]
            line = ins.positions.lineno if ins.positions else None
            if line is not None and line != src_line:
                return line
            if ins.opname in self.RETURNS:
                return -code.co_firstlineno
            if ins.opname in self.JUMPS:
                i = index.get(ins.argval)
            elif ins.opname.startswith("POP_JUMP_IF") or ins.opname in self.STOP:
                return None
            else:
                i += 1
        return None

    def _arcs(self, code, ran):
        import dis
        instrs = list(dis.get_instructions(code))
        index = {ins.offset: i for i, ins in enumerate(instrs)}
        line_of = lambda ins: ins.positions.lineno if ins.positions else None
        arcs = set()
        for i, ins in enumerate(instrs):
            line = line_of(ins)
            if line is None:
                continue
            nxt = instrs[i + 1] if i + 1 < len(instrs) else None
            if ins.opname in self.RETURNS and line in ran:
                arcs.add((line, -code.co_firstlineno))
            elif ins.opname in self.JUMPS:
                if (code, ins.offset, ins.argval) in self.taken:
                    to = self._dest(code, instrs, index, line, index.get(ins.argval))
                    if to is not None:
                        arcs.add((line, to))
            elif ins.opname.startswith("POP_JUMP_IF") or ins.opname == "FOR_ITER":
                for src, dst in [(s, d) for c, s, d in self.taken
                                 if c is code and s == ins.offset]:
                    j = index.get(dst) if dst in index else None
                    to = self._dest(code, instrs, index, line, j)
                    if to is not None:
                        arcs.add((line, to))
            elif (nxt is not None and line in ran and ins.opname not in self.STOP
                  and ins.opname not in self.LOOP_END and line_of(nxt) != line):
                to = self._dest(code, instrs, index, line, i + 1)
                if to is not None and (to < 0 or to in ran):
                    arcs.add((line, to))
        return arcs

    def _events(self):
        """BRANCH (3.12, 3.13), or BRANCH_LEFT and BRANCH_RIGHT (3.14+),
        all recorded by their destination: which is which is not used."""
        ev = sys.monitoring.events
        branch = ([ev.BRANCH_LEFT, ev.BRANCH_RIGHT] if hasattr(ev, "BRANCH_LEFT")
                  else [ev.BRANCH])
        out = {ev.LINE: self._line, ev.PY_START: self._start, ev.JUMP: self._jump}
        out.update((b, self._branch) for b in branch)
        return out

    def begin(self):
        mon = sys.monitoring
        mon.use_tool_id(self.TOOL, "parity")
        events = self._events()
        for ev, fn in events.items():
            mon.register_callback(self.TOOL, ev, fn)
        mon.set_events(self.TOOL, sum(events))

    def end(self):
        mon = sys.monitoring
        mon.set_events(self.TOOL, 0)
        for ev in self._events():
            mon.register_callback(self.TOOL, ev, None)
        mon.free_tool_id(self.TOOL)
        ran_by_file = {}
        for code, lines in self.codes.items():
            ran_by_file.setdefault(code.co_filename, set()).update(lines)
        out = {}
        for code in self.codes:
            f = code.co_filename
            out.setdefault(f, set()).update(self._arcs(code, ran_by_file[f]))
        for f, lines in ran_by_file.items():
            out.setdefault(f, set()).update((-n, n) for n in lines)
        with open(self.path, "w") as fp:
            json.dump({f: sorted(a) for f, a in out.items()}, fp)


def wait_go(oracle):
    """Say READY, wait for "go" (covinject attaches meanwhile), then start
    measuring.  READY is printed here, not by the caller, so that the
    caller's line is already running when anyone can attach."""
    sys.stdout.write("READY\n")       # 2.7 has no print(flush=)
    sys.stdout.flush()
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise SystemExit("expected go, got %r" % line)
    oracle.begin()


def wait_until(cond):
    """Poll cond: here, so that how often it runs is never compared."""
    while not cond():
        time.sleep(0.001)


def finish(oracle, results):
    """Stop measuring, report, and wait until the test has what it needs."""
    oracle.end()
    sys.stdout.write("DONE %r\n" % (results,))
    sys.stdout.flush()
    sys.stdin.readline()


def open_oracle(argv):
    if "--oracle" not in argv:
        return NoOracle()
    kind, path = argv[argv.index("--oracle") + 1].split(":", 1)
    if kind in ("coverage", "coverage-branch"):
        return CoverageOracle(path, kind == "coverage-branch")
    if kind == "settrace":
        return SettraceOracle(path)
    if kind == "monitoring":
        return MonitoringOracle(path)
    if kind == "monitoring-branch":
        return MonitoringBranchOracle(path)
    raise SystemExit("unknown oracle %r" % kind)


# ---- helpers run as a program -------------------------------------------------

def code_lines(code):
    if hasattr(code, "co_lines"):
        return {line for _, _, line in code.co_lines() if line}
    import dis
    return {line for _, line in dis.findlinestarts(code)}


def derived_lines(code):
    """What payload/modules.c derives: module and class bodies, recursively."""
    lines = code_lines(code)
    for c in code.co_consts:
        if hasattr(c, "co_flags") and not c.co_flags & 3:
            lines |= derived_lines(c)
    return lines


def main(argv):
    if argv[1] == "model":
        out = {}
        for path in argv[2:]:
            with open(path, "rb") as f:
                out[path] = sorted(derived_lines(compile(f.read(), path, "exec")))
        print(json.dumps(out))
    elif argv[1] == "analysis":
        # analysis DATA CONTEXT FILE...: the missing lines and branches this
        # interpreter's coverage.py reports from one context of DATA
        cov = import_coverage().Coverage(data_file=argv[2], config_file=False)
        cov.load()
        cov.get_data().set_query_contexts(["^%s$" % argv[3]])
        out = {}
        for path in argv[4:]:
            an = cov._analyze(path)
            out[path] = [sorted(an.missing), {str(k): sorted(v) for k, v in
                                              an.missing_branch_arcs().items()}]
        print(json.dumps(out))
    elif argv[1] == "imports":
        import warnings
        oracle = CoverageOracle(argv[2], False) if coverage_runs() else \
            SettraceOracle(argv[2], live=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in argv[3:]:
                __import__(name)
        oracle.end()


if __name__ == "__main__":
    main(sys.argv)
