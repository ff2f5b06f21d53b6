"""Micro-benchmark: deleting N small objects, one DeleteObject each or DeleteObjects batches.

Why: the S3 target sends a batch's plain deletes in DeleteObjects calls of up to
1,000 keys (mirrord/targets/s3/batch.py) instead of a DeleteObject per key. This
measures what that saves, as bench/s3_clients.py does for puts: the objects are
put first (not measured), then deleted through each arm from `concurrency`
threads; wall seconds and this process's CPU seconds per 1,000 deletes (medians
of `reps`, arms alternating), and the server's CPU per 1,000.

- `lean`: DeleteObject through mirrord.targets.s3.lean, a key per request;
- `crt`: DeleteObject through awscrt (bench/s3_crt.py);
- `sdk`: botocore's delete_object;
- `delete-objects`: botocore's delete_objects, 1,000 keys a call (Quiet), the calls
  spread over the threads.

    .venv/bin/python -m bench.s3_deletes [--files 3000] [--reps 5] [--arms ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bench.cpu import tree_cpu
from bench.s3_clients import SIZE, _cpu, _session, report
from mirrord.config import S3Options
from mirrord.targets.s3.client import make_client

Deleter = Callable[[ThreadPoolExecutor, list[str]], None]
PER_CALL = 1000     # DeleteObjects' limit (S3 API Reference, DeleteObjects)


def _check(done: bool, what: str) -> None:
    if not done:
        raise RuntimeError(f"{what} refused")


def make_arms(opts: S3Options, concurrency: int) -> tuple[dict[str, Deleter], Callable[[], None]]:
    """The delete arms, and one function that closes them all; also the lean put used to
    fill the bucket, as arms["_put"]."""
    from bench.s3_crt import CrtRequests
    client, lean = make_client(opts, workers=concurrency, connect_timeout=5, read_timeout=30,
                               name="bench", secrets=[])
    assert lean is not None
    crt = CrtRequests.for_client(client, _session(opts).get_credentials(), opts.bucket,
                                 workers=concurrency, connect_timeout=5, read_timeout=30)
    assert crt is not None

    def batches(pool: ThreadPoolExecutor, keys: list[str]) -> None:
        def one(chunk: list[str]) -> None:
            resp = client.delete_objects(Bucket=opts.bucket, Delete={
                "Objects": [{"Key": k} for k in chunk], "Quiet": True})
            _check(not resp.get("Errors"), f"DeleteObjects: {resp.get('Errors', [])[:1]}")
        list(pool.map(one, [keys[i:i + PER_CALL] for i in range(0, len(keys), PER_CALL)]))

    arms: dict[str, Any] = {
        "lean": lambda pool, keys: [_check(ok, "lean delete")
                                    for ok in pool.map(lean.delete, keys)],
        "crt": lambda pool, keys: [_check(ok, "crt delete") for ok in pool.map(crt.delete, keys)],
        "sdk": lambda pool, keys: list(pool.map(
            lambda k: client.delete_object(Bucket=opts.bucket, Key=k), keys)),
        "delete-objects": batches,
        "_put": lambda k, body: _check(lean.put(k, body, {}) is not None, "lean put"),
    }
    return arms, lambda: (lean.close(), crt.close(), client.close())


def bench_deletes(arms: dict[str, Any], name: str, opts: S3Options, prefix: str, files: int,
                  concurrency: int, server_pid: int | None) -> tuple[float, float, float]:
    """Put `files` objects under `prefix`, then delete them through arm `name`; (wall s,
    this process's CPU s, the server's CPU s) of the deletes. Checks nothing is left."""
    body = os.urandom(SIZE)
    keys = [f"{prefix}d{i % 50}/f{i:06d}" for i in range(files)]
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda k: arms["_put"](k, body), keys))
        server0 = tree_cpu(server_pid) if server_pid else 0.0
        cpu0, wall0 = _cpu(), time.perf_counter()
        arms[name](pool, keys)
        wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    server = (tree_cpu(server_pid) - server0) if server_pid else 0.0
    left = _session(opts).client("s3", endpoint_url=opts.endpoint_url).list_objects_v2(
        Bucket=opts.bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0)
    if left:
        raise RuntimeError(f"{name}: objects left under {prefix}")
    return wall, cpu, server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.s3_deletes")
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--arms", default="lean,delete-objects,crt,sdk")
    args = ap.parse_args(argv)
    names = [a for a in args.arms.split(",") if a]
    from tests.services.seaweedfs import start_seaweedfs
    server = start_seaweedfs(Path(tempfile.mkdtemp(prefix="bench-s3d-")))
    opts = S3Options(bucket=server.new_bucket(), endpoint_url=server.endpoint_url,
                     region=server.region, access_key_id=server.access_key,
                     secret_access_key=server.secret_key, addressing_style="path")
    try:
        arms, close = make_arms(opts, args.concurrency)
        results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
        print(f"loadavg before: {os.getloadavg()}", flush=True)
        for rep in range(args.reps):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                pid = server.proc.pid if server.proc else None
                results[name].append(bench_deletes(arms, name, opts, f"{name}/{rep}/",
                                                   args.files, args.concurrency, pid))
        close()
        print(f"loadavg after: {os.getloadavg()}")
        print(f"{args.files} deletes, {args.concurrency} threads, {args.reps} reps, "
              "arms alternating")
        print(report(results, args.files, "deletes"))
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
