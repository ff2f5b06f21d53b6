"""Micro-benchmark: small PutObjects through each S3 client the field offers, side by side.

Why: a burst of small files to S3 is CPU-bound in the shipping process, so the
client's CPU per request decides throughput (issue 15). This puts N objects of
4 KiB (with mirrord's metadata: mtime, mode, sha256) into a real SeaweedFS
through each arm, from `concurrency` worker threads that each wait for their
own request, as the shipper's workers do:

- `lean`: mirrord's own path (mirrord.targets.s3.lean: SigV4 signed by awscrt,
  sent by libcurl through pycurl on a kept-alive handle per thread);
- `lean-botocore-signer`: the same with the signer it had before (botocore's
  S3SigV4Auth), to measure what the native signer saves;
- `crt`: awscrt.s3.S3Client.make_request(PUT_OBJECT) as bench/s3_crt.py sends it,
  signing and I/O in the AWS Common Runtime's native threads;
- `crt-transfer`: s3transfer's CRTTransferManager (what boto3[crt] uses), its
  upload() of an in-memory file object;
- `sdk`: botocore's put_object as mirrord configures it (client.py), the reference;
- `classic-transfer`: s3transfer's classic TransferManager as the target uses it for
  large files (multipart at or above 8 MiB, 8 MiB parts, 4 in flight): with --size.

Reported per arm: the median over `reps` of the wall seconds and of this
process's CPU seconds (user + system, every thread, native ones included:
getrusage(RUSAGE_SELF), getrusage(2)) per 1,000 puts, and the S3 server's CPU
per 1,000 puts (/proc/PID/stat, bench.cpu). Arms alternate within each rep (the
order rotates), so load from other processes spreads over all of them; the
load average is printed before and after. Run:

    .venv/bin/python -m bench.s3_clients [--files 2000] [--reps 5] [--arms lean,crt,...]
    .venv/bin/python -m bench.s3_clients --size 33554432 --files 8 --concurrency 1 \
        --arms classic-transfer,crt-transfer     # large files, multipart

It starts its own SeaweedFS (tests.services.seaweedfs, every port explicit) unless
--endpoint, --access-key and --secret-key name one; `bench_arm()` takes any endpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from bench.cpu import tree_cpu
from mirrord.config import S3Options
from mirrord.targets.s3.client import make_client
from mirrord.targets.s3.keys import put_args
from mirrord.targets.s3.lean import headers_from_args

SIZE = 4096
Put = Callable[[str, bytes, dict[str, Any], str], None]   # key, body, put_args, sha256 hex


def _cpu() -> float:
    """CPU seconds (user + system) of this process, all threads, so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------ the arms
def lean_arm(opts: S3Options, concurrency: int, *,
             signer: Callable[[Any, str], Any] | None = None) -> tuple[Put, Callable[[], None]]:
    """`signer(credentials, region)`: a signer to use instead of the lean path's own."""
    client, lean = make_client(opts, workers=concurrency, connect_timeout=5, read_timeout=30,
                               name="bench", secrets=[])
    assert lean is not None, "the lean path is not available for this endpoint"
    if signer is not None:
        lean._signer = signer(lean.credentials, lean._signer.region)

    def put(key: str, body: bytes, args: dict[str, Any], digest: str) -> None:
        if lean.put(key, body, headers_from_args(args), sha256=digest) is None:
            raise RuntimeError(f"lean put of {key} refused")
    return put, lambda: (lean.close(), client.close())


class BotocoreSigner:
    """The lean path's signer before awscrt (mirrord.targets.s3.signing): botocore's
    S3SigV4Auth on an AWSRequest, a known payload digest signed as given. Kept here so
    the two can be measured side by side (README "S3 clients compared")."""

    def __init__(self, credentials: Any, region: str):
        self.credentials, self.region = credentials, region

    def sign(self, method: str, path: str, headers: dict[str, str], sha256: str | None,
             body: bytes | None) -> dict[str, str]:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        class Known(S3SigV4Auth):
            def payload(self, request: Any) -> str:
                return request.context["payload_sha256"] or super().payload(request)

        request = AWSRequest(method=method, url=f"http://{headers['Host']}{path}",
                             data=body or b"", headers=dict(headers))
        request.context["payload_sha256"] = sha256
        Known(self.credentials.get_frozen_credentials(), "s3", self.region).add_auth(request)
        return dict(request.headers.items())


def lean_botocore_signer_arm(opts: S3Options, concurrency: int) -> tuple[Put, Callable[[], None]]:
    """`lean` with the signer it had before awscrt (BotocoreSigner)."""
    return lean_arm(opts, concurrency, signer=BotocoreSigner)


def sdk_arm(opts: S3Options, concurrency: int) -> tuple[Put, Callable[[], None]]:
    client, lean = make_client(opts, workers=concurrency, connect_timeout=5, read_timeout=30,
                               name="bench", secrets=[])
    if lean is not None:
        lean.close()

    def put(key: str, body: bytes, args: dict[str, Any], digest: str) -> None:
        client.put_object(Bucket=opts.bucket, Key=key, Body=body, **args)
    return put, client.close


def crt_arm(opts: S3Options, concurrency: int) -> tuple[Put, Callable[[], None]]:
    from bench.s3_crt import CrtRequests
    client, lean = make_client(opts, workers=concurrency, connect_timeout=5, read_timeout=30,
                               name="bench", secrets=[])
    if lean is not None:
        lean.close()
    crt = CrtRequests.for_client(client, _session(opts).get_credentials(), opts.bucket,
                                 workers=concurrency, connect_timeout=5, read_timeout=30)
    assert crt is not None, "awscrt is not installed or the endpoint needs the SDK"

    def put(key: str, body: bytes, args: dict[str, Any], digest: str) -> None:
        if crt.put(key, body, headers_from_args(args), sha256=digest) is None:
            raise RuntimeError(f"CRT put of {key} refused")
    return put, lambda: (crt.close(), client.close())


def _session(opts: S3Options) -> Any:
    import boto3
    return boto3.session.Session(aws_access_key_id=opts.access_key_id,
                                 aws_secret_access_key=opts.secret_access_key,
                                 region_name=opts.region)


def crt_transfer_arm(opts: S3Options, concurrency: int) -> tuple[Put, Callable[[], None]]:
    from s3transfer.crt import (BotocoreCRTCredentialsWrapper, BotocoreCRTRequestSerializer,
                                CRTTransferManager, create_s3_crt_client)

    session = _session(opts)
    creds = BotocoreCRTCredentialsWrapper(session.get_credentials()).to_crt_credentials_provider()
    crt = create_s3_crt_client(opts.region, creds, use_ssl=opts.endpoint_url.startswith("https"))
    serializer = BotocoreCRTRequestSerializer(session._session, client_kwargs={
        "region_name": opts.region, "endpoint_url": opts.endpoint_url})
    manager = CRTTransferManager(crt, serializer)

    def put(key: str, body: bytes, args: dict[str, Any], digest: str) -> None:
        manager.upload(io.BytesIO(body), opts.bucket, key, extra_args=args).result()
    return put, lambda: manager.__exit__(None, None, None)


def classic_transfer_arm(opts: S3Options, concurrency: int) -> tuple[Put, Callable[[], None]]:
    from boto3.s3.transfer import create_transfer_manager

    from mirrord.targets.s3.client import transfer_config
    client, lean = make_client(opts, workers=concurrency, connect_timeout=5, read_timeout=30,
                               name="bench", secrets=[])
    if lean is not None:
        lean.close()
    config = transfer_config(8 << 20, 8 << 20)

    def put(key: str, body: bytes, args: dict[str, Any], digest: str) -> None:
        with create_transfer_manager(client, config) as manager:   # per put, as the target
            manager.upload(io.BytesIO(body), opts.bucket, key, extra_args=args).result()
    return put, client.close


ARMS = {"classic-transfer": classic_transfer_arm, "lean": lean_arm, "crt": crt_arm,
        "crt-transfer": crt_transfer_arm, "sdk": sdk_arm,
        "lean-botocore-signer": lean_botocore_signer_arm}


# ------------------------------------------------------------------ measuring
def bench_arm(put: Put, opts: S3Options, prefix: str, files: int, concurrency: int,
              server_pid: int | None = None, size: int = SIZE) -> tuple[float, float, float]:
    """Put `files` objects of `size` bytes under `prefix` through `put` from `concurrency`
    threads. (wall seconds, this process's CPU seconds, the server's CPU seconds; 0 if not
    known)."""
    bodies = [os.urandom(size) for _ in range(min(files, 64 if size <= 1 << 20 else 2))]

    def one(i: int) -> None:
        body = bodies[i % len(bodies)]
        digest = hashlib.sha256(body).hexdigest()   # the target hashes every body too
        path = f"d{i % 50}/f{i:06d}.bin"
        args = put_args(opts, path, time.time_ns(), digest, 0o644)
        put(f"{prefix}{path}", body, args, digest)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(min(8, files))))   # connections up, imports done: not measured
        server0 = tree_cpu(server_pid) if server_pid else 0.0
        cpu0, wall0 = _cpu(), time.perf_counter()
        list(pool.map(one, range(files)))
        wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    server = (tree_cpu(server_pid) - server0) if server_pid else 0.0
    return wall, cpu, server


def run(opts: S3Options, arms: list[str], *, files: int, reps: int, concurrency: int,
        server_pid: int | None = None,
        size: int = SIZE) -> dict[str, list[tuple[float, float, float]]]:
    """bench_arm for each arm in `arms`, `reps` times, the order rotating each rep; the
    (wall s, client CPU s, server CPU s) of every run, per arm. Rep r writes under
    "<arm>/<r>/" in opts.bucket."""
    made = {name: ARMS[name](opts, concurrency) for name in arms}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in arms}
    try:
        for rep in range(reps):
            order = arms[rep % len(arms):] + arms[:rep % len(arms)]
            for name in order:
                put = made[name][0]
                results[name].append(bench_arm(put, opts, f"{name}/{rep}/", files,
                                               concurrency, server_pid, size))
    finally:
        for _, close in made.values():
            close()
    return results


def report(results: dict[str, list[tuple[float, float, float]]], files: int,
           what: str = "puts") -> str:
    """A markdown table of the medians (`what`: the operation counted, for the header)."""
    per = 1000 / files
    lines = [f"| arm | wall s (median) | {what}/s | wall / first arm's, same rep (median) "
             f"| client CPU s / 1k {what} (min-max) | server CPU s / 1k {what} | reps |",
             "|---|---|---|---|---|---|---|"]
    first = next(iter(results.values()))
    for name, rows in results.items():
        # runs of one rep are adjacent in time: their ratio cancels much of the outside load
        paired = statistics.median(r[0] / f[0] for r, f in zip(rows, first))
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows) * per
        server = statistics.median(r[2] for r in rows) * per
        spread = f"{min(r[1] for r in rows) * per:.2f}-{max(r[1] for r in rows) * per:.2f}"
        lines.append(f"| {name} | {wall:.2f} | {files / wall:.0f} | {paired:.2f} "
                     f"| {cpu:.3f} ({spread}) | "
                     f"{server:.3f} | {len(rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.s3_clients",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=int, default=SIZE, help="bytes per object")
    ap.add_argument("--arms", default="lean,crt,crt-transfer,sdk")
    ap.add_argument("--endpoint", default="")
    ap.add_argument("--access-key", default="")
    ap.add_argument("--secret-key", default="")
    args = ap.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    server = None
    if args.endpoint:
        opts = S3Options(bucket="bench-clients", endpoint_url=args.endpoint,
                         access_key_id=args.access_key, secret_access_key=args.secret_key,
                         addressing_style="path")
    else:
        from tests.services.seaweedfs import start_seaweedfs
        server = start_seaweedfs(Path(tempfile.mkdtemp(prefix="bench-s3c-")))
        opts = S3Options(bucket=server.new_bucket(), endpoint_url=server.endpoint_url,
                         region=server.region, access_key_id=server.access_key,
                         secret_access_key=server.secret_key, addressing_style="path")
    try:
        print(f"loadavg before: {os.getloadavg()}", flush=True)
        results = run(opts, arms, files=args.files, reps=args.reps,
                      concurrency=args.concurrency, size=args.size,
                      server_pid=server.proc.pid if server and server.proc else None)
        print(f"loadavg after: {os.getloadavg()}")
        print(f"{args.files} x {args.size} B puts, {args.concurrency} threads, {args.reps} reps, "
              f"arms alternating")
        print(report(results, args.files))
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
