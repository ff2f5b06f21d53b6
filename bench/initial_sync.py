"""3. Initial sync: a populated tree, an empty target, until the target holds every file.

The tree (sizes spread on a log scale between the profile's bounds, many small
and a few large, in two-level directories) is made once. Per repetition, on a
fresh bucket / remote directory each, alternating the order:
- to S3:   mirrord started on the tree (S3 target; its default `workers` unless
           --s3-workers) vs `rclone copy TREE remote:bucket/prefix --transfers 16`.
- to host: mirrord started on the tree (rsync target through the loopback sshd)
           vs `rsync -a TREE/ user@host:DIR/` over the same sshd.
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

import shlex
import shutil
from pathlib import Path
from typing import Callable

from bench.ack import (Arm, Meter, confirm, cpu_summary, record, run_to_exit, s3_sizes,
                       tree_sizes, wait_mirrord)
from bench.common import (S3_TRANSFERS, Context, Mirrord, have, log_uniform, make_tree,
                          mirrord_config, rclone_env, rsync_target_ini, s3_client, s3_target_ini)
from bench.cpu import tree_cpu

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
                              lambda: tree_sizes(root), expected, None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _mirrord_until(ctx: Context, work: Path, tree: Path, target_ini: str,
                   listing: Callable[[], dict[str, int]], expected: dict[str, int],
                   server_pid: int | None) -> Arm:
    """mirrord from exec on `tree` to its journal's acknowledgement of every file,
    then one `listing()` of the target must equal `expected`."""
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=tree,
                         target_ini=target_ini)
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
    rsh = " ".join(shlex.quote(a) for a in [
        "ssh", "-p", str(ssh.port), "-i", str(ssh.key_path), "-o", f"UserKnownHostsFile={ssh.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
    try:
        arm = run_to_exit(ctx, ["rsync", "-a", "-e", rsh, f"{tree}/", f"{ssh.user}@{ssh.host}:{root}/"],
                          log=work / "rsync.log", env=None, meter=Meter(None), timeout=TIMEOUT)
        confirm(lambda: tree_sizes(root), expected, "rsync")
    finally:
        shutil.rmtree(root, ignore_errors=True)
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
        (f"to S3 (mirrord {workers})", f"rclone copy --transfers {S3_TRANSFERS}",
         mirrord_to_s3, rclone_to_s3, have("rclone")),
        ("to host over ssh", "rsync -a over ssh", mirrord_to_host, rsync_to_host, have("rsync")),
    ]
    for where, peer, mine, theirs, peer_ok in pairs:
        row = ctx.row("3 initial sync", f"{where}: {desc}", "seconds to own ack", peer)
        for rep in range(ctx.reps):
            order = [("mirrord", mine), ("peer", theirs)]
            if rep % 2:
                order.reverse()
            for who, fn in order:
                if who == "peer" and not peer_ok:
                    continue
                try:
                    arm = fn(ctx, tree, expected)
                except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                    ctx.log(f"initial {where} {who}: FAILED {exc}")
                    row.notes.append(f"{who} rep {rep + 1} failed: {str(exc)[:200]}")
                    continue
                record(row, "mirrord" if who == "mirrord" else "other", arm, p.initial_files)
                ctx.log(f"initial {where} {who if who == 'mirrord' else peer} rep {rep + 1}: "
                        f"{arm.seconds:.2f} s ({p.initial_files / arm.seconds:.0f} files/s, "
                        f"{total / 2**20 / arm.seconds:.0f} MiB/s); CPU {arm.tool_cpu:.2f} s, "
                        f"server {arm.server_cpu:.2f} s")
        for side in ("mirrord", "other"):
            if row.cpu.get(side):
                ctx.log(f"initial {where} {side} median: {cpu_summary(row, side)}")
