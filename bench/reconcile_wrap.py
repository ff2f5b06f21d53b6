"""5. Reconcile of an in-sync tree: runs another helper's bench/reconcile_bench.py as it is.

That script starts its own SeaweedFS, lets mirrord upload a tree of 1 KiB
files, then alternates `mirrord reconcile --dry-run` with `rclone sync
--dry-run` (and a 1 % drift repair) and prints a JSON summary, which is read
back here into the table, with the CPU seconds per 1,000 files of the tree it
measured for each tool and for SeaweedFS (every run, not only the medians). It
runs as a child in its own process group, so the suite stops it (and its
SeaweedFS) whatever happens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.common import Context, Proc, have

NAME = "reconcile"
SCRIPT = Path(__file__).resolve().parent / "reconcile_bench.py"
FILES = {"quick": 2_000, "default": 10_000, "full": 100_000}


def _summary(text: str) -> dict:
    """The last top-level JSON object the script printed."""
    start = text.rfind("\n{")
    end = text.rfind("\n}")
    if start < 0 or end < start:
        raise RuntimeError(f"no JSON summary in its output:\n{text[-1500:]}")
    return json.loads(text[start + 1:end + 2])


def run(ctx: Context) -> None:
    if not SCRIPT.exists():
        ctx.log("reconcile: bench/reconcile_bench.py not there; skipped")
        return
    files = FILES[ctx.profile.name]
    case = f"in-sync tree of {files:,} × 1 KiB on S3"
    row = ctx.row("5 reconcile", case, "seconds (dry run)", "rclone sync --dry-run --checkers 16")
    rss = ctx.row("5 reconcile", case, "peak RSS MiB", "")
    drift = ctx.row("5 reconcile", f"{case}, 1 % drifted", "seconds (repair)",
                    "rclone sync --checkers 16 --transfers 16")
    if not have("rclone"):
        row.notes.append("rclone not installed: skipped")
        return
    work = ctx.fresh_dir("reconcile")
    proc = Proc(ctx, [sys.executable, str(SCRIPT), "--files", str(files), "--runs", str(ctx.reps)],
                log=work / "reconcile_bench.log")
    try:
        proc.popen.wait(7200)
    finally:
        proc.stop()
    try:
        doc = _summary(proc.log_text())
    except (RuntimeError, ValueError) as exc:
        row.notes.append(f"reconcile_bench.py exited {proc.popen.returncode}: {str(exc)[:300]}")
        return
    dry, rep = doc["in_sync_dry_run"], doc["one_percent_drift"]
    # every run's figure where the script gives them (the table then shows min–max too)
    row.mirrord += dry.get("mirrord_s", [dry["mirrord_median_s"]])
    row.other += dry.get("rclone_s", [dry["rclone_median_s"]])
    rss.mirrord.append(dry["mirrord_peak_rss_mib"])
    drift.mirrord += rep.get("mirrord_s", [rep["mirrord_median_s"]])
    drift.other += rep.get("rclone_s", [rep["rclone_median_s"]])
    for target, part in ((row, dry), (drift, rep)):
        cpu = part.get("cpu_s_per_1k_files", {})
        for theirs, ours in (("mirrord", "mirrord"), ("rclone", "other"),
                             ("server_mirrord", "server_mirrord"), ("server_rclone", "server_other")):
            target.cpu[ours] = list(cpu.get(theirs, []))
    note = (f"{doc['runs']} alternating runs inside reconcile_bench.py; CPU per "
            f"1,000 files of the tree (each tool timed to its exit, nothing else on the server)")
    row.notes.append(note)
    drift.notes.append(note)
    ctx.log(f"reconcile: mirrord {dry['mirrord_median_s']} s, rclone {dry['rclone_median_s']} s, "
            f"peak RSS {dry['mirrord_peak_rss_mib']} MiB; drift repair mirrord "
            f"{rep['mirrord_median_s']} s, rclone {rep['rclone_median_s']} s")
