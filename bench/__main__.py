"""`python -m bench [--quick | --full] [--only NAME ...]`: mirrord beside its peers.

Prints a Markdown table and writes it to bench/results/latest.md, with every
raw figure in bench/results/latest.json. Exit status is 0 when the suite ran
(whatever the figures say) and 1 when a workload crashed outright; a failed
run of one tool is recorded in the notes and does not stop the suite.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import (
    PROFILES,
    TARGET_KINDS,
    Context,
    Row,
    fmt,
    fmt_runs,
    median,
    tool_version,
)
from bench.scratch import JournaledImage, describe, unjournaled_ext4

# name -> module; run in this order (latency first: it is issue 2's requirement)
WORKLOADS = {
    "latency": "bench.latency",
    "burst": "bench.burst_s3",
    "initial": "bench.initial_sync",
    "startup": "bench.startup",
    "reconcile": "bench.reconcile_wrap",   # runs bench/reconcile_bench.py (not ours)
    "large": "bench.large_file",
    "watchers": "bench.watchers",          # fanotify vs inotify vs lsyncd (issue 18)
}
# run only when named with --only: the watchers workload needs root (fanotify) and seeds
# a tree of its own, which the smoke test's time budget (test_bench_smoke.py) has no room for
OPT_IN = {"watchers"}
RESULTS = Path(__file__).resolve().parent / "results"
# where --keep-deleted applies: mirrord's arm writes to an S3, rsync or local target
# (bench/common.py s3_target_ini, rsync_target_ini, local_target_ini(ctx=)); the other
# workloads would mislabel or ignore it
KEEP_DELETED_WORKLOADS = ("burst", "initial")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (CI smoke)")
    mode.add_argument("--full", action="store_true", help="the sizes named in issue 6")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help=f"run only these workloads (repeatable or comma list): {', '.join(WORKLOADS)}")
    p.add_argument("--reps", type=int, default=None, help="repetitions (default: per mode)")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help="unrecorded rounds of every arm before the burst's and initial "
                        "sync's repetitions (default: 1, 0 with --quick): the first arm of "
                        "a run otherwise pays for the server's and the page cache's first use")
    p.add_argument("--out", type=Path, default=RESULTS, help="where latest.md / latest.json go")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--s3-workers", type=int, default=None, metavar="N",
                   help="mirrord's S3 `workers` in the burst and initial-sync arms "
                        "(default: mirrord's own default, as issue 15's goals are set)")
    p.add_argument("--watch-tree", default=None, metavar="FILES:DIRS",
                   help="the watchers workload's start-up tree (issue 18: 1000000:200000; "
                        "default per mode: quick 20000:4000, default 100000:20000)")
    p.add_argument("--watch-rates", default=None, metavar="RATES",
                   help="the watchers workload's sustained rates, a comma list of creates per "
                        "second (default per mode: quick 500,2000; default 1000,4000; full "
                        "1000,4000,10000,20000), to bracket each backend's ceiling")
    p.add_argument("--watch-parts", default="cost,sustained,startup", metavar="PARTS",
                   help="which parts of the watchers workload run, a comma list of "
                        "cost, sustained, startup (default: all three)")
    p.add_argument("--keep-deleted", nargs="?", const="7d", default=None, metavar="DURATION",
                   help="run mirrord's targets with `keep_deleted = DURATION` (default 7d); "
                        f"only with --only {','.join(KEEP_DELETED_WORKLOADS)}; rows are labelled, "
                        "so with --merge they stand beside the rows without it")
    p.add_argument("--keep-paired", nargs="?", const="7d", default=None, metavar="DURATION",
                   help="run mirrord twice per repetition, without and with `keep_deleted = "
                        "DURATION` (default 7d), back to back: paired figures of what keeping "
                        f"costs; only with --only {','.join(KEEP_DELETED_WORKLOADS)}")
    p.add_argument("--targets", default=",".join(TARGET_KINDS), metavar="LIST",
                   help="which targets the burst and initial-sync workloads run "
                        f"(comma list of {', '.join(TARGET_KINDS)}; default all)")
    p.add_argument("--watcher", choices=("inotify", "fanotify", "auto"), default=None,
                   help="mirrord's `[source] watcher =` in the burst, initial-sync, latency and "
                        "start-up workloads (default: mirrord's own); rows are labelled")
    p.add_argument("--scratch", type=Path, default=None, metavar="DIR",
                   help="where the run's files go (default: the system's temporary directory)")
    p.add_argument("--scratch-image", default=None, metavar="SIZE",
                   help="run on a journaled ext4 of SIZE (e.g. 40G: a sparse image under the "
                        "scratch directory, loop-mounted for the run; root only), as an upload "
                        "volume has; see bench/scratch.py for why")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of other workloads found in OUT/latest.json")
    return p.parse_args(argv)


def selected(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")
    return [n for n in WORKLOADS if n in names or not names and n not in OPT_IN]


def render(ctx: Context, started: float, crashed: dict[str, str]) -> str:
    lines = [
        f"# mirrord benchmark ({ctx.profile.name} mode, {ctx.reps} repetition(s))", "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; took {time.monotonic() - started:.0f} s",
        f"- machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average at end {os.getloadavg()[0]:.2f}",
        scratch_line(getattr(ctx, "scratch_fs", "unknown")),
        f"- peers: {tool_version(['lsyncd', '--version'])}; {tool_version(['rclone', 'version'])}; "
        f"{tool_version(['rsync', '--version'])}",
        "- figures: median of the repetitions (min–max in brackets); ratio = mirrord ÷ peer, "
        "so **≤ 1.00 means mirrord is at least as good** for times and memory (for MiB/s, ≥ 1.00; ✓/✗ mark which). Peers ran in the same "
        "run, alternating A/B then B/A; loopback services only.",
    ]
    if ctx.keep_paired:
        lines.append(f"- --keep-paired: mirrord ran without and with `keep_deleted = "
                     f"{ctx.keep_paired}` back to back in each repetition (rows labelled so), "
                     "the arms' order rotating; the peer's figures are the same on both rows")
    if ctx.keep_deleted:
        lines.append(f"- mirrord's targets ran with `keep_deleted = {ctx.keep_deleted}` (rows "
                     "labelled so); the peers keep nothing")
    merged = getattr(ctx, "merged", [])
    if merged:
        lines.append(f"- rows kept from an earlier run of this mode (--merge): {', '.join(merged)}")
    lines += [
        "- CPU columns: CPU seconds per 1,000 files (medians) of the tool's process tree, then "
        "of the server (SeaweedFS) during that tool's arm, read from /proc (wait4 for a peer "
        "that exits) in the same run; CPU ratio = mirrord's own ÷ the peer's own.",
        "",
        "| workload | case | metric | mirrord | peer | peer figure | ratio "
        "| mirrord CPU s/1k files (own / server) | peer CPU s/1k files (own / server) | CPU ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ctx.rows:
        ratio = r.ratio()
        mark = "" if ratio != ratio else (" ✓" if (ratio <= 1.0) == r.lower_is_better or ratio == 1.0 else " ✗")
        lines.append(f"| {r.workload} | {r.case} | {r.metric} | {fmt_runs(r.mirrord)} | "
                     f"{r.peer or '–'} | {fmt_runs(r.other)} | {fmt(ratio)}{mark} | "
                     f"{_cpu_cells(r)} |")
    notes = [(r, " ".join(n.split())) for r in ctx.rows for n in dict.fromkeys(r.notes)]
    if notes or crashed:
        lines += ["", "Notes:"]
        lines += [f"- {r.workload} / {r.case}: {n}" for r, n in notes]
        lines += [f"- {name}: crashed: {err}" for name, err in crashed.items()]
    return "\n".join(lines) + "\n"


def scratch_line(fs: str) -> str:
    """The header line saying on what file system the run's figures were taken."""
    warn = ("; creating files after a tree was removed costs up to 10× there, so rows "
            "that create files are inflated (bench/scratch.py)"
            if fs.startswith("ext4 without") else "")
    return f"- scratch: {fs}{warn}"


def _cpu_cells(r: Row) -> str:
    """The three CPU cells of a row: 'own / server' for each side, then own ÷ own."""
    def cell(side: str) -> str:
        if not r.cpu.get(side):
            return "–"
        return f"{fmt(median(r.cpu[side]))} / {fmt(median(r.cpu.get('server_' + side, [])))}"
    m, p = median(r.cpu.get("mirrord", [])), median(r.cpu.get("other", []))
    ratio = m / p if not (math.isnan(m) or math.isnan(p)) and p > 0 else math.nan
    return f"{cell('mirrord')} | {cell('other')} | {fmt(ratio)}"


def merge_previous(ctx: Context, path: Path) -> None:
    """Put back earlier rows of workloads this run did not measure (same mode only)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if old.get("mode") != ctx.profile.name:
        return
    fresh = {r.workload for r in ctx.rows}
    kept = [Row(d["workload"], d["case"], d["metric"], d["peer"], d["mirrord"], d["other"],
                d.get("lower_is_better", True), d.get("notes", []), d.get("cpu_s_per_1k_files", {}))
            for d in old.get("rows", []) if d["workload"] not in fresh]
    ctx.merged = sorted({r.workload for r in kept})
    ctx.rows[:] = sorted(kept + ctx.rows, key=lambda r: r.workload)   # stable: order within kept


def compile_mirrord(ctx: Context) -> None:
    """Byte-compile the package as an install would: an editable checkout run with
    PYTHONDONTWRITEBYTECODE would otherwise compile every module on every start-up."""
    import compileall

    import mirrord
    if not compileall.compile_dir(os.path.dirname(mirrord.__file__), quiet=1):
        ctx.log("compileall reported errors; start-up figures include compiling")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full" if args.full else "default"]
    names = selected(args)
    if (args.keep_deleted or args.keep_paired) and not set(names) <= set(KEEP_DELETED_WORKLOADS):
        raise SystemExit(f"--keep-deleted and --keep-paired apply to "
                         f"{', '.join(KEEP_DELETED_WORKLOADS)} only: "
                         f"add --only {','.join(KEEP_DELETED_WORKLOADS)}")
    if args.keep_deleted and args.keep_paired:
        raise SystemExit("--keep-deleted and --keep-paired: give one (--keep-paired runs both)")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or set(targets) - set(TARGET_KINDS):
        raise SystemExit(f"--targets: a comma list of {', '.join(TARGET_KINDS)}, "
                         f"not {args.targets!r}")
    watch_parts = {p.strip() for p in args.watch_parts.split(",") if p.strip()}
    if not watch_parts or watch_parts - {"cost", "sustained", "startup"}:
        raise SystemExit(f"--watch-parts: a comma list of cost, sustained, startup, "
                         f"not {args.watch_parts!r}")
    with contextlib.ExitStack() as stack:
        scratch = args.scratch
        if args.scratch_image:
            scratch = stack.enter_context(JournaledImage(
                args.scratch_image, args.scratch or Path(tempfile.gettempdir())))
        return run_suite(args, profile, names, targets, watch_parts, scratch)


def run_suite(args: argparse.Namespace, profile, names: list[str], targets: list[str],
              watch_parts: set[str], scratch: Path | None) -> int:
    """Run the named workloads in one Context under `scratch`; print and write the table.
    Returns 1 when a workload crashed outright, else 0."""
    ctx = Context(profile, reps=args.reps, keep=args.keep, s3_workers=args.s3_workers,
                  keep_deleted=args.keep_deleted, targets=targets, keep_paired=args.keep_paired,
                  watcher=args.watcher, scratch=scratch,
                  warmup=args.warmup if args.warmup is not None else (0 if args.quick else 1))
    ctx.scratch_fs = describe(ctx.base)
    if unjournaled_ext4(ctx.base):
        ctx.log(f"warning: the scratch is {ctx.scratch_fs}: creating files after a tree was "
                "removed costs up to 10x there (bench/scratch.py); --scratch-image 40G "
                "gives the run a journaled ext4")
    if args.watch_tree:
        files, _, dirs = args.watch_tree.partition(":")
        ctx.watch_tree = (int(files), int(dirs))
    ctx.watch_parts = watch_parts
    if args.watch_rates:
        try:
            ctx.watch_rates = [int(r) for r in args.watch_rates.split(",") if r.strip()]
        except ValueError:
            raise SystemExit(f"--watch-rates: a comma list of whole numbers, "
                             f"not {args.watch_rates!r}") from None
    compile_mirrord(ctx)
    started = time.monotonic()
    crashed: dict[str, str] = {}
    # SIGTERM behaves like Ctrl-C: the finally block below stops every child
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    ctx.log(f"mode {profile.name}, {ctx.reps} rep(s), workloads: {', '.join(names)}; "
            f"scratch {ctx.base} on {ctx.scratch_fs}")
    try:
        for name in names:
            try:
                module = importlib.import_module(WORKLOADS[name])
            except ImportError as exc:
                ctx.log(f"{name}: not available ({exc}); skipped")
                continue
            if not callable(getattr(module, "run", None)):
                ctx.log(f"{name}: {WORKLOADS[name]} has no run(ctx); skipped")
                continue
            ctx.log(f"== {name}")
            try:
                module.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one workload's crash does not stop the rest
                traceback.print_exc()
                crashed[name] = f"{type(exc).__name__}: {exc}"[:300]
    except KeyboardInterrupt:
        ctx.log("interrupted; stopping every child process")
        crashed["suite"] = "interrupted"
    finally:
        ctx.close()
    if args.merge:
        merge_previous(ctx, args.out / "latest.json")
    table = render(ctx, started, crashed)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(table)
    (args.out / "latest.json").write_text(json.dumps({
        "mode": profile.name, "reps": ctx.reps, "workloads": names,
        "seconds": round(time.monotonic() - started, 1), "crashed": crashed,
        "rows": [r.as_dict() for r in ctx.rows]}, indent=2, ensure_ascii=False) + "\n")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
