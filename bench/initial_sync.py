"""3. Initial sync: a populated tree, an empty target, until the target holds every file.

The tree (sizes spread on a log scale between the profile's bounds, many small
and a few large, in two-level directories) is made once. Per repetition, on a
fresh bucket / remote directory each, alternating the order:
- to S3:   mirrord started on the tree (S3 target) until a ListObjectsV2 count
           reaches N, vs `rclone copy TREE remote:bucket/prefix --transfers 16`
           (until it exits; the count is checked after). Both at the same
           concurrency: mirrord's S3 target runs with workers = 16.
- to host: mirrord started on the tree (rsync target through the loopback sshd)
           until a walk of the remote directory counts N files, vs
           `rsync -a TREE/ user@host:DIR/` over the same sshd (until it exits).
mirrord's time starts at exec and includes its start-up. It ends when mirrord's
state database says every queued operation was shipped, confirmed by counting
on the target (the count is repeated until it holds). Earlier versions listed
the bucket four times a second instead: that load (about a CPU-second per
second on this machine, shared by SeaweedFS and the bench) was paid by mirrord
alone, since the peers are timed to their exit.
Each copy is deleted once counted (SeaweedFS frees a deleted bucket's volumes):
at --full the tree is ~28 GiB and four copies would not fit on the disk.
"""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path
from typing import Callable

from bench.common import (S3_TRANSFERS, Context, Mirrord, Proc, count_files, count_keys, have,
                          log_uniform, make_tree, mirrord_config, rclone_env, rsync_target_ini,
                          s3_client, s3_target_ini)

NAME = "initial"
TIMEOUT = 3600.0


def _poll_interval(n: int) -> float:
    return 0.25 if n <= 10_000 else 2.0


def mirrord_to_s3(ctx: Context, tree: Path, n: int) -> float:
    work = ctx.fresh_dir("init-m-s3")
    bucket = ctx.seaweed().new_bucket()
    client = s3_client(ctx)
    try:
        return _mirrord_until(ctx, work, tree, s3_target_ini(ctx, bucket, "init/", workers=S3_TRANSFERS),
                              lambda: count_keys(client, bucket, "init/"), n)
    finally:
        client.delete_bucket(Bucket=bucket)


def mirrord_to_host(ctx: Context, tree: Path, n: int) -> float:
    work = ctx.fresh_dir("init-m-ssh")
    root = ctx.sshd().new_root()
    try:
        return _mirrord_until(ctx, work, tree, rsync_target_ini(ctx, root),
                              lambda: count_files(root), n)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _mirrord_until(ctx: Context, work: Path, tree: Path, target_ini: str,
                   count: Callable[[], int], n: int) -> float:
    """Seconds from exec of mirrord on `tree` until `count()` reaches n on the target."""
    cfg = mirrord_config(work / "mirrord.ini", state=work / "state", source=tree,
                         target_ini=target_ini)
    m = Mirrord(ctx, cfg)
    try:
        m.start(wait=False)
        return m.wait_shipped(n, count, timeout=TIMEOUT, verify_every=_poll_interval(n))
    finally:
        m.stop()


def _timed(ctx: Context, argv: list[str], log: Path, env: dict | None = None) -> float:
    t0 = time.monotonic()
    proc = Proc(ctx, argv, log=log, env=env)
    try:
        rc = proc.popen.wait(TIMEOUT)
    finally:
        proc.stop()
    if rc != 0:
        raise RuntimeError(f"{argv[0]} exited {rc}: {proc.log_text()[-1500:]}")
    return time.monotonic() - t0


def rclone_to_s3(ctx: Context, tree: Path, n: int) -> float:
    work = ctx.fresh_dir("init-rclone")
    bucket = ctx.seaweed().new_bucket()
    client = s3_client(ctx)
    try:
        secs = _timed(ctx, ["rclone", "copy", str(tree), f"BENCH:{bucket}/init", "--transfers",
                             str(S3_TRANSFERS)],
                      work / "rclone.log", rclone_env(ctx))
        got = count_keys(client, bucket, "init/")
    finally:
        client.delete_bucket(Bucket=bucket)
    if got != n:
        raise RuntimeError(f"rclone copied {got} of {n} objects")
    return secs


def rsync_to_host(ctx: Context, tree: Path, n: int) -> float:
    work = ctx.fresh_dir("init-rsync")
    ssh = ctx.sshd()
    root = ssh.new_root()
    rsh = " ".join(shlex.quote(a) for a in [
        "ssh", "-p", str(ssh.port), "-i", str(ssh.key_path), "-o", f"UserKnownHostsFile={ssh.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
    try:
        secs = _timed(ctx, ["rsync", "-a", "-e", rsh, f"{tree}/", f"{ssh.user}@{ssh.host}:{root}/"],
                      work / "rsync.log")
        got = count_files(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if got != n:
        raise RuntimeError(f"rsync copied {got} of {n} files")
    return secs


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def run(ctx: Context) -> None:
    p = ctx.profile
    tree = ctx.fresh_dir("init-tree") / "tree"
    tree.mkdir()
    ctx.log(f"initial: making {p.initial_files:,} files in {p.initial_dirs:,} dirs")
    total = make_tree(tree, p.initial_files, p.initial_dirs,
                      size=log_uniform(p.initial_min, p.initial_max), seed=3)
    desc = (f"{p.initial_files:,} files {_size(p.initial_min)}–{_size(p.initial_max)} "
            f"({total / 2**20:,.0f} MiB), {p.initial_dirs:,} dirs")
    pairs = [
        ("to S3", f"rclone copy --transfers {S3_TRANSFERS}", mirrord_to_s3, rclone_to_s3, have("rclone")),
        ("to host over ssh", "rsync -a over ssh", mirrord_to_host, rsync_to_host, have("rsync")),
    ]
    for where, peer, mine, theirs, peer_ok in pairs:
        row = ctx.row("3 initial sync", f"{where}: {desc}", "seconds", peer)
        for rep in range(ctx.reps):
            order = [("mirrord", mine), ("peer", theirs)]
            if rep % 2:
                order.reverse()
            for who, fn in order:
                if who == "peer" and not peer_ok:
                    continue
                try:
                    secs = fn(ctx, tree, p.initial_files)
                except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
                    ctx.log(f"initial {where} {who}: FAILED {exc}")
                    row.notes.append(f"{who} rep {rep + 1} failed: {str(exc)[:200]}")
                    continue
                (row.mirrord if who == "mirrord" else row.other).append(secs)
                ctx.log(f"initial {where} {who if who == 'mirrord' else peer} rep {rep + 1}: "
                        f"{secs:.2f} s ({p.initial_files / secs:.0f} files/s, "
                        f"{total / 2**20 / secs:.0f} MiB/s)")
