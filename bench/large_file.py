"""6. One large file to S3 (multipart), mirrord vs rclone copy; throughput.

The file (random bytes) is written once to a staging directory on the same
filesystem as the source. Per repetition, on a fresh bucket each, alternating:
- mirrord: the daemon runs on an empty source (S3 target, default config:
  multipart from 64 MiB, 16 MiB parts); a copy of the file is made beside the
  tree (outside the clock), the clock starts and the copy is renamed into the
  tree (the write-then-rename pattern: a moved-in file is shipped at once); the
  clock stops when mirrord's state database acknowledges it (bench/ack.py).
  A copy, not a hard link to the staged file: a file with a link outside the
  source asks for a links walk of the source (mirrord.hardlinks), which found the
  file still in flight and queued it again, so it was sent twice (2x the time
  and the server's CPU since the walk came in; an upload renamed into place has
  one link).
- rclone: `rclone copy FILE remote:bucket/prefix` (defaults: 5 MiB parts,
  4 concurrent), until it exits.
Nothing asks SeaweedFS anything while a tool works (issue 15); afterwards one
listing must show the object at its full size. CPU seconds of each tool and of
SeaweedFS are logged and kept in the row's notes (per file, not per 1,000).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bench.ack import (Arm, Meter, acked_now, confirm, run_to_exit, s3_sizes, wait_mirrord)
from bench.common import Context, Mirrord, have, mirrord_config, rclone_env, s3_client, s3_target_ini
from bench.cpu import tree_cpu

NAME = "large"
TIMEOUT = 3600.0


def make_file(path: Path, size: int) -> None:
    block = os.urandom(8 << 20)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
            block = block[1:] + block[:1]   # no two parts alike


def run_mirrord(ctx: Context, big: Path, size: int) -> Arm:
    work = ctx.fresh_dir("large-m")
    src = work / "src"
    src.mkdir()
    bucket = ctx.seaweed().new_bucket()
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=src,
                         target_ini=s3_target_ini(ctx, bucket, "large/"))
    moved = big.with_name(big.name + ".moved")
    m = Mirrord(ctx, cfg)
    try:
        m.start()
        m.wait_catchup(60)
        shutil.copyfile(big, moved)       # keep the original for the next run (a copy:
        # a hard link would be a second name outside the source, see the docstring)
        with open(moved, "rb") as fh:     # written back before the clock starts, as the
            os.fsync(fh.fileno())         # original rclone reads is
        acked = acked_now(m)
        meter = Meter(ctx.seaweed().proc.pid)
        meter.start(m.proc.pid)
        os.rename(moved, src / "big.bin")
        at = wait_mirrord(m, 1, acked_before=acked, timeout=TIMEOUT)
        arm = meter.stop(at, tree_cpu(m.proc.pid))
    finally:
        m.stop()
    confirm(lambda: s3_sizes(s3_client(ctx), bucket, "large/"), {"big.bin": size}, "mirrord")
    return arm


def run_rclone(ctx: Context, big: Path, size: int) -> Arm:
    work = ctx.fresh_dir("large-r")
    bucket = ctx.seaweed().new_bucket()
    arm = run_to_exit(ctx, ["rclone", "copy", str(big), f"BENCH:{bucket}/large"],
                      log=work / "rclone.log", env=rclone_env(ctx),
                      meter=Meter(ctx.seaweed().proc.pid), timeout=TIMEOUT)
    confirm(lambda: s3_sizes(s3_client(ctx), bucket, "large/"), {"big.bin": size}, "rclone")
    return arm


def run(ctx: Context) -> None:
    size = ctx.profile.large_file
    big = ctx.fresh_dir("large-stage") / "big.bin"
    make_file(big, size)
    case = f"one {size / 2**20:,.0f} MiB file, multipart"
    row = ctx.row("6 large file to S3", case, "seconds", "rclone copy (defaults)")
    mibs = ctx.row("6 large file to S3", case, "MiB/s (higher is better)", "rclone copy (defaults)",
                   lower_is_better=False)
    rclone_ok = have("rclone")
    for rep in range(ctx.reps):
        order = ["mirrord", "rclone"] if rep % 2 == 0 else ["rclone", "mirrord"]
        for tool in order:
            if tool == "rclone" and not rclone_ok:
                continue
            try:
                arm = run_mirrord(ctx, big, size) if tool == "mirrord" else run_rclone(ctx, big, size)
            except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                ctx.log(f"large {tool}: FAILED {exc}")
                row.notes.append(f"{tool} rep {rep + 1} failed: {str(exc)[:200]}")
                continue
            secs = arm.seconds
            cpu = f"CPU {arm.tool_cpu:.2f} s, SeaweedFS {arm.server_cpu:.2f} s"
            ctx.log(f"large {tool} rep {rep + 1}: {secs:.2f} s ({size / 2**20 / secs:.0f} MiB/s); {cpu}")
            row.notes.append(f"{tool} rep {rep + 1}: {cpu}")
            (row.mirrord if tool == "mirrord" else row.other).append(secs)
            (mibs.mirrord if tool == "mirrord" else mibs.other).append(size / 2**20 / secs)
