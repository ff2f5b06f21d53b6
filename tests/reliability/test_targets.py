"""Target faults: S3 down, sshd down, the local target's disk full, a bucket deleted under us.

Each: the source is never touched, the other targets go on, the backlog shows
in `mirrord status --json`, and everything converges after recovery.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from tests.e2e.helpers import wait_converged
from tests.reliability.conftest import Env, excluded, poll, tmpfs, write_config


def _burst(src, prefix: str, n: int, *, size: int = 2048, pause: float = 0.0) -> dict[str, bytes]:
    written = {}
    for i in range(n):
        d = src / f"{prefix}{i % 5}"
        d.mkdir(exist_ok=True)
        data = os.urandom(size) + str(i).encode()
        (d / f"f{i:04d}").write_bytes(data)
        written[f"{prefix}{i % 5}/f{i:04d}"] = data
        if pause:
            time.sleep(pause)
    return written


def _backlog(env: Env, name: str, *, error: str | None = None) -> dict:
    def check():
        t = env.daemon.status()["targets"][name]
        if t["pending"] > 0 and t["last_error"] and (error is None or error in t["last_error"]):
            return t
        return None
    return poll(check, timeout=90, what=f"backlog with an error on {name}")


def _others_converge(env: Env, down: str) -> None:
    for name, target in env.targets.items():
        if name != down:
            wait_converged(env.src, target, timeout=180, excluded=excluded)


def _service_outage(env: Env, service, name: str, outage: float) -> dict:
    env.daemon.start()
    before = _burst(env.src, "pre", 50)
    env.converge()
    stopped = threading.Event()

    def writer():
        _burst(env.src, "mid", 100, pause=0.01)
        stopped.wait(120)
        _burst(env.src, "during", 100)
        (env.src / "pre0" / "f0000").unlink()               # a delete held in the backlog
        (env.src / "pre1" / "f0001").write_bytes(b"changed while down")

    w = threading.Thread(target=writer)
    w.start()
    time.sleep(0.5)                                         # mid-burst
    service.stop()
    try:
        stopped.set()
        w.join()
        backlog = _backlog(env, name)
        _others_converge(env, name)
        time.sleep(outage)
    finally:
        service.start()
    env.converge(timeout=300)
    assert all((env.src / p).exists() for p in before if p != "pre0/f0000")
    assert env.daemon.stop() == 0
    return backlog


def test_s3_server_down_mid_burst(env, seaweedfs):
    backlog = _service_outage(env, seaweedfs, "s3", 5.0)
    assert backlog["pending"] > 0


@pytest.mark.slow
def test_s3_server_down_30s_mid_burst(env, seaweedfs):
    _service_outage(env, seaweedfs, "s3", 30.0)


def test_sshd_down_mid_burst(env, sshd):
    _service_outage(env, sshd, "host", 5.0)


@pytest.mark.slow
def test_sshd_down_30s_mid_burst(env, sshd):
    _service_outage(env, sshd, "host", 30.0)


def test_local_target_disk_full_then_space_freed(tmp_path, seaweedfs, sshd):
    mnt = tmp_path / "mirror"
    with tmpfs(mnt, "2m"):
        e = Env(tmp_path, write_config(tmp_path, seaweedfs, sshd, local_path=str(mnt)))
        try:
            e.daemon.start()
            _burst(e.src, "big", 40, size=100_000)          # ~4 MB into 2 MB
            backlog = _backlog(e, "local")
            assert "space" in backlog["last_error"].lower()
            _others_converge(e, "local")
            assert len(os.listdir(e.src)) == 5              # the source untouched
            subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
            e.converge(timeout=300)                         # retried with backoff, then drained
            assert e.daemon.stop() == 0
            assert os.listdir(mnt / ".mirrord" / "tmp") == []   # no staged copy left behind
        finally:
            e.close()


def test_bucket_deleted_under_the_daemon(env, seaweedfs):
    bucket = env.targets["s3"].bucket
    client = seaweedfs.client()
    env.daemon.start()
    first = _burst(env.src, "a", 20)
    env.converge()
    _empty_and_delete(client, bucket)
    _burst(env.src, "b", 20)
    (env.src / "a0" / "f0000").write_bytes(b"overwritten while the bucket is gone")
    (env.src / "a1" / "f0001").unlink()
    backlog = _backlog(env, "s3", error="NoSuchBucket")
    assert backlog["pending"] > 0
    _others_converge(env, "s3")
    assert all((env.src / p).exists() for p in first if p != "a1/f0001")
    client.create_bucket(Bucket=bucket)
    # The objects that were shipped before are gone with the bucket: only a reconcile
    # can know that. It also re-queues the held backlog at once.
    env.daemon.cli("reconcile", "--target", "s3")
    env.converge()
    assert env.daemon.stop() == 0


def _empty_and_delete(client, bucket: str) -> None:
    while True:
        listing = client.list_objects_v2(Bucket=bucket)
        keys = [{"Key": o["Key"]} for o in listing.get("Contents", [])]
        if not keys:
            break
        client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)
