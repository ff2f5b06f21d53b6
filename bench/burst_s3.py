"""2. Burst: N files of 4 KiB copied into the watched tree at once, on each target kind.

A staging tree (N files in 50 directories, two levels like MediaWiki's x/xy)
is made once. Per repetition and target (--targets), on a fresh bucket /
directory each, the arms' order rotating (bench/pairs.py):
- mirrord: the daemon runs on an empty source and has finished its start-up
  catch-up; the clock starts, `cp -r` copies the staging tree into the source,
  and the clock stops when mirrord's state database acknowledges all N files
  (bench/ack.py). Targets: S3 (its default `workers` unless --s3-workers), rsync
  over the loopback sshd, local directory (fsync = no, as the peer's rsync).
- the peer copies the staging tree in one go and the clock stops at its exit:
  `rclone copy STAGE remote:bucket/prefix --transfers 16` for S3, `rsync -a`
  over the same sshd for ssh, a local `rsync -a` for the local directory.
  (lsyncd would be the live peer for a local mirror, but it waits out its own
  delay before calling rsync and has no acknowledgement of its own to stop a
  clock on, so its figure would be its delay setting plus a poller's; rsync -a
  does the same copy and ends at its exit, as rclone does.)
Nothing talks to the target while a tool works (issue 15: a full listing every
0.1 s during both arms cost the faster client most and hid a 1.5x gap). After
the clock stops, the CPU of the tool and of the server (SeaweedFS; the sshd's
process tree for ssh) since the start is read from /proc (wait4 for a peer),
and one listing must show all N files at 4 KiB.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import partial
from pathlib import Path
from typing import Callable

from bench.ack import (Arm, Meter, acked_now, confirm, run_to_exit, s3_sizes, tree_sizes,
                       wait_mirrord)
from bench.common import (S3_TRANSFERS, Context, Mirrord, fixed, have, local_target_ini,
                          make_tree, mirrord_config, rclone_env, rsync_rsh, rsync_target_ini,
                          s3_client, s3_target_ini, sshd_pid)
from bench.cpu import tree_cpu
from bench.pairs import Pair, run_pair

NAME = "burst"
TIMEOUT = 600.0
PREFIX = "burst/tree/"
TRANSFERS = S3_TRANSFERS   # rclone --transfers, as in the goal


def run_mirrord(ctx: Context, stage: Path, expected: dict[str, int]) -> Arm:
    """mirrord's S3 arm, on a fresh bucket."""
    bucket = ctx.seaweed().new_bucket()
    return _mirrord_burst(ctx, "burst-m", stage, expected,
                          s3_target_ini(ctx, bucket, "burst/", workers=ctx.s3_workers),
                          lambda: s3_sizes(s3_client(ctx), bucket, PREFIX),
                          ctx.seaweed().proc.pid)


def run_mirrord_ssh(ctx: Context, stage: Path, expected: dict[str, int]) -> Arm:
    """mirrord's rsync-target arm, into a fresh root on the loopback sshd."""
    root = ctx.sshd().new_root()
    try:
        return _mirrord_burst(ctx, "burst-m-ssh", stage, expected, rsync_target_ini(ctx, root),
                              lambda: tree_sizes(root / "tree"), sshd_pid(ctx))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_mirrord_local(ctx: Context, stage: Path, expected: dict[str, int]) -> Arm:
    """mirrord's local-target arm, into a fresh directory."""
    dest = ctx.fresh_dir("burst-m-local-dest")
    return _mirrord_burst(ctx, "burst-m-local", stage, expected,
                          local_target_ini(dest, fsync=False, ctx=ctx),
                          lambda: tree_sizes(dest / "tree"), None)


def _mirrord_burst(ctx: Context, name: str, stage: Path, expected: dict[str, int],
                   target_ini: str, listing: Callable[[], dict[str, int]],
                   server_pid: int | None) -> Arm:
    """mirrord on an empty source, caught up; clock from `cp -r STAGE` to its journal's
    acknowledgement of every file; then one `listing()` must equal `expected`."""
    work = ctx.fresh_dir(name)
    src = work / "src"
    src.mkdir()
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=src,
                         target_ini=target_ini, watcher=ctx.watcher)
    m = Mirrord(ctx, cfg)
    try:
        m.start()
        m.wait_catchup(60)
        acked = acked_now(m)
        meter = Meter(server_pid)
        meter.start(m.proc.pid)
        subprocess.run(["cp", "-r", str(stage), str(src / "tree")], check=True)
        at = wait_mirrord(m, len(expected), acked_before=acked, timeout=TIMEOUT)
        arm = meter.stop(at, tree_cpu(m.proc.pid))
    finally:
        m.stop()
    confirm(listing, expected, "mirrord")
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


def run_rsync_ssh(ctx: Context, stage: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("burst-rsync-ssh")
    ssh = ctx.sshd()
    root = ssh.new_root()
    try:
        arm = run_to_exit(ctx, ["rsync", "-a", "-e", rsync_rsh(ctx), str(stage),
                                f"{ssh.user}@{ssh.host}:{root}/"],
                          log=work / "rsync.log", env=None, meter=Meter(sshd_pid(ctx)),
                          timeout=TIMEOUT)
        confirm(lambda: tree_sizes(root / "tree"), expected, "rsync")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return arm


def run_rsync_local(ctx: Context, stage: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("burst-rsync-local")
    arm = run_to_exit(ctx, ["rsync", "-a", str(stage), f"{work}/dest/"], log=work / "rsync.log",
                      env=None, meter=Meter(None), timeout=TIMEOUT)
    confirm(lambda: tree_sizes(work / "dest" / "tree"), expected, "rsync")
    return arm


# target kind -> (row name, mirrord's arm, the peer's name, the peer's arm, the peer's tool)
ARMS = {
    "s3": ("2 burst to S3", run_mirrord, f"rclone copy --transfers {TRANSFERS}", run_rclone,
           "rclone"),
    "ssh": ("2 burst over ssh", run_mirrord_ssh, "rsync -a over ssh", run_rsync_ssh, "rsync"),
    "local": ("2 burst to a local directory (fsync = no)", run_mirrord_local, "rsync -a (local)",
              run_rsync_local, "rsync"),
}


def run(ctx: Context) -> None:
    n = ctx.profile.burst_files
    stage = ctx.fresh_dir("burst-stage") / "tree"
    stage.mkdir()
    make_tree(stage, n, 50, size=fixed(4096))
    expected = tree_sizes(stage)
    workers = f"workers = {ctx.s3_workers}" if ctx.s3_workers else "default config"
    case = f"{n:,} files × 4 KiB, cp -r into the watched tree (mirrord {workers})"
    for kind, (workload, mine, peer, theirs, tool) in ARMS.items():
        if kind in ctx.targets:
            run_pair(ctx, Pair(workload, case, peer, partial(mine, stage=stage, expected=expected),
                               partial(theirs, stage=stage, expected=expected), tool,
                               have(tool), n), f"burst {kind}")
