"""Where keep_deleted's time goes on the local and rsync targets, measured in one process.

`python -m bench.keep_cost [--target local|ssh] [--files N] [--batch B] [--reps R]`

N new files of 4 KiB (50 directories, two levels, as the burst) are shipped through the
real engine path (Shipper.run_ops -> keeper -> Target.sync) in batches of B, one batch
after another, to a fresh root per arm: once without keep_deleted and once with it,
back to back in each repetition (the order alternating), so the machine's drift
between the two is small. The keep's own share is timed inside: every call of
Target.keep_many (one remote script per batch on rsync) and of Target.stat (the
keeper's "holds already" check on local). Printed: the medians of wall seconds per
arm, the paired with ÷ without ratio, and the seconds per batch spent in each call.

The daemon runs batches on several workers at once; this runs them serially on
purpose, so each second of a keep shows up as a second of wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.common import fixed, make_tree
from mirrord.config import LocalOptions, RsyncOptions, SourceConfig, TargetConfig
from mirrord.executors import serial
from mirrord.journal import Op
from mirrord.shipper import Shipper
from mirrord.targets import create
from mirrord.trash.keeper import KeepPolicy

S, T = "src", "t"


class Timed:
    """Wraps a bound method of one target: count of calls and seconds spent in them."""

    def __init__(self, target, name: str):
        self.calls, self.seconds = 0, 0.0
        self.real = getattr(target, name)
        setattr(target, name, self)

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.real(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def make_target(kind: str, base: Path, sshd):
    if kind == "local":
        return create(TargetConfig(name=T, type="local", workers=1,
                                   local=LocalOptions(path=base / "dest", fsync=False)))
    return create(TargetConfig(name=T, type="rsync", workers=1, rsync=RsyncOptions(
        host=sshd.host, port=sshd.port, user=sshd.user, path=str(sshd.new_root()),
        ssh_key=sshd.key_path, known_hosts=sshd.known_hosts, strict_host_key_checking="yes")))


def one_arm(kind: str, base: Path, src: Path, paths: list[str], batch: int, keep: bool,
            sshd, *, ahead: bool = False) -> dict[str, float]:
    """Ship every path once; wall seconds and the seconds inside the timed calls. `ahead`:
    the target keeps nothing in its puts (Features.keep_by_condition off), so every file is
    kept by keep_many before its batch, as the local target did before issue 17."""
    t = make_target(kind, base, sshd)
    if ahead:
        t.features = replace(t.features, keep_by_condition=False)
    t.open()
    timers = {name: Timed(t, name) for name in ("keep_many", "stat", "sync")}
    shipper = Shipper({T: t}, [SourceConfig(S, src, (T,))], {T: 1}, executor=serial,
                      keep={T: KeepPolicy(7 * 86400.0)} if keep else None)
    now = time.time()
    ops = [Op(i + 1, i + 1, T, S, p, "put", None, False, False, 0, now)
           for i, p in enumerate(paths)]
    try:
        t0, cpu0, kids0 = time.perf_counter(), time.process_time(), _children_cpu()
        for i in range(0, len(ops), batch):
            for out in shipper.run_ops(t, ops[i:i + batch]):
                if out.error is not None:
                    raise RuntimeError(f"{out.op.path}: {out.error}")
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0 + _children_cpu() - kids0
    finally:
        t.close()
        if kind == "local":
            shutil.rmtree(base / "dest", ignore_errors=True)
    got = {"wall": wall, "cpu": cpu}
    for name, tm in timers.items():
        got[name] = tm.seconds
        got[name + "_calls"] = tm.calls
    return got


def _children_cpu() -> float:
    """CPU seconds of the children this process has reaped (ssh clients, rsync)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.keep_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=("local", "ssh"), default="local")
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--batch", type=int, default=0,
                   help="ops per batch (default: the target's batch_size, 625 on ssh: what "
                        "8 workers get of 5,000 ready ops)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--keep-ahead", action="store_true",
                   help="turn off the target's keeping in its own puts (keep_by_condition): "
                        "every file is asked by keep_many first, the way before issue 17")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="keep-cost-"))
    sshd = None
    try:
        if args.target == "ssh":
            from tests.services.sshd import SshServer
            (base / "sshd").mkdir()
            sshd = SshServer(base / "sshd")
            sshd.start()
        src = base / "src"
        (src / "tree").mkdir(parents=True)
        make_tree(src / "tree", args.files, 50, size=fixed(4096))
        paths = sorted(str(f.relative_to(src)) for f in (src / "tree").rglob("*") if f.is_file())
        batch = args.batch or (8 if args.target == "local" else 625)
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for rep in range(args.reps):
            for keep in ((False, True) if rep % 2 == 0 else (True, False)):
                runs[keep].append(one_arm(args.target, base, src, paths, batch, keep, sshd,
                                          ahead=args.keep_ahead))
            print(f"rep {rep + 1}: without {runs[False][-1]['wall']:.3f} s, with "
                  f"{runs[True][-1]['wall']:.3f} s, load {os.getloadavg()[0]:.1f}", flush=True)
        report(args, batch, runs)
    finally:
        if sshd is not None:
            sshd.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


def report(args, batch: int, runs: dict[bool, list[dict[str, float]]]) -> None:
    med = statistics.median
    ratios = [k["wall"] / p["wall"] for p, k in zip(runs[False], runs[True])]
    batches = -(-args.files // batch)
    print(f"{args.target}: {args.files} files in {batches} batches of {batch}, "
          f"{args.reps} reps, load now {os.getloadavg()[0]:.1f}")
    print(f"  wall without {med(r['wall'] for r in runs[False]):.3f} s, with "
          f"{med(r['wall'] for r in runs[True]):.3f} s; paired ratio median {med(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    cpu_ratios = [k["cpu"] / p["cpu"] for p, k in zip(runs[False], runs[True])]
    print(f"  CPU (this process and its reaped children: ssh, rsync) without "
          f"{med(r['cpu'] for r in runs[False]):.3f} s, with {med(r['cpu'] for r in runs[True]):.3f}"
          f" s; paired ratio median {med(cpu_ratios):.3f} (min {min(cpu_ratios):.3f}, max "
          f"{max(cpu_ratios):.3f})")
    for name in ("keep_many", "stat", "sync"):
        for keep in (False, True):
            calls = med(r[name + "_calls"] for r in runs[keep])
            if calls:
                secs = med(r[name] for r in runs[keep])
                print(f"  {'with' if keep else 'without'} keep: {name}: {calls:.0f} calls, "
                      f"{secs:.3f} s ({secs / batches * 1000:.2f} ms per batch, "
                      f"{secs / args.files * 1e6:.0f} us per file)")


if __name__ == "__main__":
    raise SystemExit(main())
