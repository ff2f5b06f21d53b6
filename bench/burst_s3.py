"""2. Burst to S3: N files of 4 KiB copied into the watched tree at once.

A staging tree (N files in 50 directories, two levels like MediaWiki's x/xy)
is made once. Per repetition, on a fresh bucket each, alternating the order:
- mirrord: the daemon (S3 target; its default `workers` unless --s3-workers)
  runs on an empty source and has finished its start-up catch-up; the clock
  starts, `cp -r` copies the staging tree into the source, and the clock stops
  when mirrord's state database acknowledges all N files (bench/ack.py).
- rclone: the clock starts, `rclone copy STAGE remote:bucket/prefix
  --transfers 16` runs; the clock stops at its exit.
Nothing talks to SeaweedFS while a tool works (issue 15: a full listing every
0.1 s during both arms cost the faster client most and hid a 1.5x gap). After
the clock stops, the CPU of the tool and of SeaweedFS since the start is read
from /proc (wait4 for rclone), and one listing must show all N keys at 4 KiB.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.ack import (Arm, Meter, acked_now, confirm, cpu_summary, record, run_to_exit,
                       s3_sizes, tree_sizes, wait_mirrord)
from bench.common import (S3_TRANSFERS, Context, Mirrord, fixed, have, make_tree,
                          mirrord_config, rclone_env, s3_client, s3_target_ini)
from bench.cpu import tree_cpu

NAME = "burst"
TIMEOUT = 600.0
PREFIX = "burst/tree/"
TRANSFERS = S3_TRANSFERS   # rclone --transfers, as in the goal


def run_mirrord(ctx: Context, stage: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("burst-m")
    src = work / "src"
    src.mkdir()
    bucket = ctx.seaweed().new_bucket()
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=src,
                         target_ini=s3_target_ini(ctx, bucket, "burst/", workers=ctx.s3_workers))
    m = Mirrord(ctx, cfg)
    try:
        m.start()
        m.wait_catchup(60)
        acked = acked_now(m)
        meter = Meter(ctx.seaweed().proc.pid)
        meter.start(m.proc.pid)
        subprocess.run(["cp", "-r", str(stage), str(src / "tree")], check=True)
        at = wait_mirrord(m, len(expected), acked_before=acked, timeout=TIMEOUT)
        arm = meter.stop(at, tree_cpu(m.proc.pid))
    finally:
        m.stop()
    confirm(lambda: s3_sizes(s3_client(ctx), bucket, PREFIX), expected, "mirrord")
    return arm


def run_rclone(ctx: Context, stage: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("burst-r")
    bucket = ctx.seaweed().new_bucket()
    arm = run_to_exit(ctx, ["rclone", "copy", str(stage), f"BENCH:{bucket}/{PREFIX.rstrip('/')}",
                            "--transfers", str(TRANSFERS)],
                      log=work / "rclone.log", env=rclone_env(ctx),
                      meter=Meter(ctx.seaweed().proc.pid), timeout=TIMEOUT)
    confirm(lambda: s3_sizes(s3_client(ctx), bucket, PREFIX), expected, "rclone")
    return arm


def run(ctx: Context) -> None:
    n = ctx.profile.burst_files
    stage = ctx.fresh_dir("burst-stage") / "tree"
    stage.mkdir()
    make_tree(stage, n, 50, size=fixed(4096))
    expected = tree_sizes(stage)
    workers = f"workers = {ctx.s3_workers}" if ctx.s3_workers else "default config"
    case = f"{n:,} files × 4 KiB, cp -r into the watched tree (mirrord {workers})"
    row = ctx.row("2 burst to S3", case, "seconds to own ack",
                  f"rclone copy --transfers {TRANSFERS}")
    rclone_ok = have("rclone")
    if not rclone_ok:
        row.notes.append("rclone not installed: peer skipped")
    for rep in range(ctx.reps):
        order = ["mirrord", "rclone"] if rep % 2 == 0 else ["rclone", "mirrord"]
        for tool in order:
            if tool == "rclone" and not rclone_ok:
                continue
            try:
                arm = (run_mirrord if tool == "mirrord" else run_rclone)(ctx, stage, expected)
            except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                ctx.log(f"burst {tool} rep {rep + 1}: FAILED {exc}")
                row.notes.append(f"{tool} rep {rep + 1} failed: {str(exc)[:200]}")
                continue
            side = "mirrord" if tool == "mirrord" else "other"
            record(row, side, arm, n)
            ctx.log(f"burst {tool} rep {rep + 1}: {arm.seconds:.2f} s ({n / arm.seconds:.0f} "
                    f"files/s); CPU {arm.tool_cpu:.2f} s, SeaweedFS {arm.server_cpu:.2f} s")
    for side, who in (("mirrord", "mirrord"), ("other", "rclone")):
        if row.cpu.get(side):
            ctx.log(f"burst {who} median: {cpu_summary(row, side)}")
