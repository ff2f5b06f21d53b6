"""A mirrored file replaced by a UNIX socket or a device node: neither is mirrored, so the
file goes from every target, live, with either watcher (the real `mirrord run`, local, S3
and a mirror host).

A trial: open(2) of a socket fails with ENXIO (and of a device with no driver with ENXIO
or ENODEV), which the shipper's look did not take for "nothing of ours there": each try
of the delete raised an internal error with a traceback, the target stayed `degraded`
and kept the stale file for good, and `mirrord reconcile` failed the same way. A FIFO
(opened O_NONBLOCK, then fstat'ed) was already handled."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from tests.e2e.test_stopped_changes import no_pass_env, start, write


@pytest.fixture(params=["inotify", "fanotify"])
def env(request, tmp_path, seaweedfs, sshd):
    with no_pass_env(tmp_path, seaweedfs, sshd, watcher=request.param) as e:
        yield e


def socket_over(path) -> None:
    """A socket bound beside `path`, renamed over it (one event: a rename over the file)."""
    tmp = path.with_name("." + path.name + ".sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp))
    os.rename(tmp, path)


def test_a_file_replaced_by_a_socket_or_a_device_goes_from_every_target(env):
    write(env.src / "renamed-over.jpg", b"r" * 100)
    write(env.src / "rebound.jpg", b"b" * 100)
    write(env.src / "device.jpg", b"d" * 100)
    write(env.src / "stays.jpg", b"s" * 100)
    start(env)
    env.assert_exact(by="the catch-up")
    socket_over(env.src / "renamed-over.jpg")
    os.unlink(env.src / "rebound.jpg")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(env.src / "rebound.jpg"))
    os.unlink(env.src / "device.jpg")
    os.mknod(env.src / "device.jpg", stat.S_IFCHR | 0o600, os.makedev(240, 7))
    env.assert_exact(by="the live stream")     # none of the three on any target
    for target in env.targets.values():
        for name in ("renamed-over.jpg", "rebound.jpg", "device.jpg"):
            assert target.stat(name) is None, (target.name, name)
    assert "Traceback" not in env.log_text()
    rc = env.daemon.cli("reconcile", check=False)
    assert rc.returncode == 0, rc.stdout + rc.stderr
