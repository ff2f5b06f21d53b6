"""3. Initial sync: a populated tree, an empty target, until the target holds every file.

The tree (sizes spread on a log scale between the profile's bounds, many small
and a few large, in two-level directories) is made once. Per repetition, on a
fresh bucket / remote directory each, the arms' order rotating (bench/pairs.py):
- to S3:   mirrord started on the tree (S3 target; its default `workers` unless
           --s3-workers) vs `rclone copy TREE remote:bucket/prefix --transfers 16`.
- to host: mirrord started on the tree (rsync target through the loopback sshd)
           vs `rsync -a TREE/ user@host:DIR/` over the same sshd; the server CPU
           column is the sshd's process tree (remote scripts, rsync's receiver).
- to local: mirrord started on the tree (local target, fsync = no, as rsync does
           not fsync either) vs `rsync -a TREE/ DIR/` on the same file system.
--targets picks which of the three run.
mirrord's time starts at exec and includes its start-up; it ends when its state
database acknowledges every file (bench/ack.py); the peers' end at their exit.
Nothing lists the target while a tool works (issue 15: a listing poller costs
the server CPU that the faster client pays most). Then the CPU of the tool's
process tree (and, for S3, of SeaweedFS) is read, and one listing / walk of the
target must hold every file at its size.
Each copy is deleted once counted (SeaweedFS frees a deleted bucket's volumes):
at --full the tree is ~28 GiB and four copies would not fit on the disk.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path
from typing import Callable

from bench.ack import Arm, Meter, confirm, run_to_exit, s3_sizes, tree_sizes, wait_mirrord
from bench.common import (S3_TRANSFERS, Context, Mirrord, have, local_target_ini, log_uniform,
                          make_tree, mirrord_config, rclone_env, rsync_rsh, rsync_target_ini,
                          s3_client, s3_target_ini, sshd_pid)
from bench.cpu import tree_cpu
from bench.pairs import Pair, run_pair

NAME = "initial"
TIMEOUT = 3600.0


def mirrord_to_s3(ctx: Context, tree: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("init-m-s3")
    bucket = ctx.seaweed().new_bucket()
    client = s3_client(ctx)
    try:
        return _mirrord_until(ctx, work, tree, s3_target_ini(ctx, bucket, "init/",
                                                              workers=ctx.s3_workers),
                              lambda: s3_sizes(client, bucket, "init/"), expected,
                              ctx.seaweed().proc.pid)
    finally:
        client.delete_bucket(Bucket=bucket)


def mirrord_to_host(ctx: Context, tree: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("init-m-ssh")
    root = ctx.sshd().new_root()
    try:
        return _mirrord_until(ctx, work, tree, rsync_target_ini(ctx, root),
                              lambda: tree_sizes(root), expected, sshd_pid(ctx))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def mirrord_to_local(ctx: Context, tree: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("init-m-local")
    dest = work / "dest"
    dest.mkdir()
    try:
        return _mirrord_until(ctx, work, tree, local_target_ini(dest, fsync=False, ctx=ctx),
                              lambda: tree_sizes(dest), expected, None)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def _mirrord_until(ctx: Context, work: Path, tree: Path, target_ini: str,
                   listing: Callable[[], dict[str, int]], expected: dict[str, int],
                   server_pid: int | None) -> Arm:
    """mirrord from exec on `tree` to its journal's acknowledgement of every file,
    then one `listing()` of the target must equal `expected`."""
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=tree,
                         target_ini=target_ini, watcher=ctx.watcher)
    m = Mirrord(ctx, cfg)
    meter = Meter(server_pid)
    try:
        meter.start(None)
        m.start(wait=False)
        at = wait_mirrord(m, len(expected), timeout=TIMEOUT)
        arm = meter.stop(at, tree_cpu(m.proc.pid))
    finally:
        m.stop()
    confirm(listing, expected, "mirrord")
    return arm


def rclone_to_s3(ctx: Context, tree: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("init-rclone")
    bucket = ctx.seaweed().new_bucket()
    client = s3_client(ctx)
    try:
        arm = run_to_exit(ctx, ["rclone", "copy", str(tree), f"BENCH:{bucket}/init",
                                "--transfers", str(S3_TRANSFERS)],
                          log=work / "rclone.log", env=rclone_env(ctx),
                          meter=Meter(ctx.seaweed().proc.pid), timeout=TIMEOUT)
        confirm(lambda: s3_sizes(client, bucket, "init/"), expected, "rclone")
    finally:
        client.delete_bucket(Bucket=bucket)
    return arm


def rsync_to_host(ctx: Context, tree: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("init-rsync")
    ssh = ctx.sshd()
    root = ssh.new_root()
    try:
        arm = run_to_exit(ctx, ["rsync", "-a", "-e", rsync_rsh(ctx), f"{tree}/",
                                f"{ssh.user}@{ssh.host}:{root}/"],
                          log=work / "rsync.log", env=None, meter=Meter(sshd_pid(ctx)),
                          timeout=TIMEOUT)
        confirm(lambda: tree_sizes(root), expected, "rsync")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return arm


def rsync_to_local(ctx: Context, tree: Path, expected: dict[str, int]) -> Arm:
    work = ctx.fresh_dir("init-rsync-local")
    dest = work / "dest"
    try:
        arm = run_to_exit(ctx, ["rsync", "-a", f"{tree}/", f"{dest}/"], log=work / "rsync.log",
                          env=None, meter=Meter(None), timeout=TIMEOUT)
        confirm(lambda: tree_sizes(dest), expected, "rsync")
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return arm


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def run(ctx: Context) -> None:
    p = ctx.profile
    tree = ctx.fresh_dir("init-tree") / "tree"
    tree.mkdir()
    ctx.log(f"initial: making {p.initial_files:,} files in {p.initial_dirs:,} dirs")
    total = make_tree(tree, p.initial_files, p.initial_dirs,
                      size=log_uniform(p.initial_min, p.initial_max), seed=3)
    expected = tree_sizes(tree)
    workers = f"workers = {ctx.s3_workers}" if ctx.s3_workers else "default config"
    desc = (f"{p.initial_files:,} files {_size(p.initial_min)}–{_size(p.initial_max)} "
            f"({total / 2**20:,.0f} MiB), {p.initial_dirs:,} dirs")
    pairs = [
        ("s3", f"to S3 (mirrord {workers})", f"rclone copy --transfers {S3_TRANSFERS}",
         mirrord_to_s3, rclone_to_s3, "rclone"),
        ("ssh", "to host over ssh", "rsync -a over ssh", mirrord_to_host, rsync_to_host, "rsync"),
        ("local", "to a local directory (fsync = no)", "rsync -a (local)", mirrord_to_local,
         rsync_to_local, "rsync"),
    ]
    for kind, where, peer, mine, theirs, tool in pairs:
        if kind in ctx.targets:
            run_pair(ctx, Pair("3 initial sync", f"{where}: {desc}", peer,
                               partial(mine, tree=tree, expected=expected),
                               partial(theirs, tree=tree, expected=expected), tool, have(tool),
                               p.initial_files), f"initial {kind}")
