"""2. Burst to S3: N files of 4 KiB copied into the watched tree at once.

A staging tree (N files in 50 directories, two levels like MediaWiki's x/xy)
is made once. Per repetition, on a fresh bucket each:
- mirrord: the daemon runs on an empty source (S3 target, default config)
  and has finished its start-up catch-up; the clock starts, `cp -r` copies the
  staging tree into the source, and the clock stops when a ListObjectsV2
  count of the prefix reaches N.
- rclone: the clock starts, `rclone copy STAGE remote:bucket/prefix
  --transfers 16` runs; the clock stops the same way.
The same poller (a full listing every POLL seconds) runs from the start in both
cases, so both pay its load and its resolution. rclone's own exit time is in
the JSON notes too.
"""

from __future__ import annotations

import subprocess
import time

from bench.common import (S3_TRANSFERS, Context, Mirrord, Proc, count_keys, fixed, have,
                          make_tree, mirrord_config, rclone_env, s3_client, s3_target_ini)

NAME = "burst"
POLL = 0.1
TIMEOUT = 600.0



TRANSFERS = S3_TRANSFERS   # the same concurrency for both: rclone --transfers, mirrord workers

def wait_keys(client, bucket: str, prefix: str, n: int, t0: float, proc: Proc | None = None) -> tuple[float, float | None]:
    """Seconds from t0 until `n` keys are listed; also when `proc` exited (if given)."""
    exited = None
    while True:
        if proc is not None and exited is None and not proc.alive():
            exited = time.monotonic() - t0
            if proc.popen.returncode != 0:
                raise RuntimeError(f"{proc.argv[0]} exited {proc.popen.returncode}: "
                                   f"{proc.log_text()[-1500:]}")
        got = count_keys(client, bucket, prefix)
        if got >= n:
            return time.monotonic() - t0, exited
        if time.monotonic() - t0 > TIMEOUT:
            raise RuntimeError(f"only {got} of {n} keys after {TIMEOUT:g} s")
        time.sleep(POLL)


def run_mirrord(ctx: Context, stage, n: int, *, workers: int | None = None) -> float:
    work = ctx.fresh_dir("burst-m")
    src = work / "src"
    src.mkdir()
    bucket = ctx.seaweed().new_bucket()
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=src,
                         target_ini=s3_target_ini(ctx, bucket, "burst/", workers=workers))
    m = Mirrord(ctx, cfg)
    try:
        m.start()
        m.wait_catchup(60)
        client = s3_client(ctx)
        t0 = time.monotonic()
        subprocess.run(["cp", "-r", str(stage), str(src / "tree")], check=True)
        seconds, _ = wait_keys(client, bucket, "burst/tree/", n, t0)
        return seconds
    finally:
        m.stop()


def run_rclone(ctx: Context, stage, n: int) -> tuple[float, float | None]:
    work = ctx.fresh_dir("burst-r")
    bucket = ctx.seaweed().new_bucket()
    client = s3_client(ctx)
    t0 = time.monotonic()
    proc = Proc(ctx, ["rclone", "copy", str(stage), f"BENCH:{bucket}/burst/tree",
                      "--transfers", str(TRANSFERS)], log=work / "rclone.log", env=rclone_env(ctx))
    try:
        return wait_keys(client, bucket, "burst/tree/", n, t0, proc)
    finally:
        proc.popen.wait(60)
        proc.stop()


def run(ctx: Context) -> None:
    n = ctx.profile.burst_files
    stage = ctx.fresh_dir("burst-stage") / "tree"
    stage.mkdir()
    make_tree(stage, n, 50, size=fixed(4096))
    case = f"{n:,} files × 4 KiB, cp -r into the watched tree"
    row = ctx.row("2 burst to S3", case, "seconds until all listed",
                  f"rclone copy --transfers {TRANSFERS}")
    rclone_ok = have("rclone")
    if not rclone_ok:
        row.notes.append("rclone not installed: peer skipped")
    for rep in range(ctx.reps):
        order = ["mirrord", "rclone"] if rep % 2 == 0 else ["rclone", "mirrord"]
        for tool in order:
            try:
                if tool == "mirrord":
                    secs = run_mirrord(ctx, stage, n, workers=TRANSFERS)
                    row.mirrord.append(secs)
                    ctx.log(f"burst mirrord rep {rep + 1}: {secs:.2f} s ({n / secs:.0f} files/s)")
                elif rclone_ok:
                    secs, exited = run_rclone(ctx, stage, n)
                    row.other.append(secs)
                    ctx.log(f"burst rclone rep {rep + 1}: {secs:.2f} s (process exit {exited})")
            except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                ctx.log(f"burst {tool} rep {rep + 1}: FAILED {exc}")
                row.notes.append(f"{tool} rep {rep + 1} failed: {str(exc)[:200]}")
