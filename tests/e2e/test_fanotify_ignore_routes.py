"""The real `mirrord run` with its default watcher (`auto`: fanotify here) and a local
target, against the routes found to defeat the kernel ignore marks (or fanotify being
the default): tests/integration/test_fanotify_ignore_routes.py has the watcher-level
versions. Each waits for a sentinel to reach the target (so the daemon has read what
came before it), then checks the target is exact with bounded polls."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from tests.e2e.helpers import Mirrord, open_targets
from tests.exactness import wait_exact
from tests.reliability.conftest import poll


def config(tmp: Path, src: Path, exclude: str) -> Path:
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = {tmp / "state"}
workers = 2
heartbeat_interval = 500ms

[source:uploads]
path = {src}
targets = local
exclude = {exclude}

[target:local]
type = local
path = {tmp / "mirror"}

[reconcile]
every = off
""")
    cfg.chmod(0o600)
    return cfg


@pytest.fixture
def run(tmp_path):
    started: list = []

    def start(src: Path, exclude: str):
        cfg = config(tmp_path, src, exclude)
        daemon = Mirrord(cfg, tmp_path / "mirrord.log")
        targets = open_targets(cfg)
        started.append((daemon, targets))
        daemon.start()
        excluded = SourceConfig("uploads", src, ("local",), exclude=(exclude,)).excluded
        return daemon, targets["local"], excluded
    yield start
    for daemon, targets in started:
        daemon.stop()
        for t in targets.values():
            t.close()


def shipped(target, rel: str, data: bytes) -> bool:
    return target.read(rel) == data


def sentinel(src: Path, target, n: int) -> None:
    """Write a file in the tree and wait until it is on the target: every event queued
    before it has been read by then."""
    rel = f"sentinel-{n}"
    (src / rel).write_bytes(rel.encode())
    poll(lambda: shipped(target, rel, rel.encode()), timeout=60, what=f"{rel} shipped")


def busy(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(30):
        with open(d / f"f{i % 5}", "ab") as f:
            f.write(b"x" * 100)


def test_path_dependent_exclude_lets_a_marked_dir_in_by_a_rename_inside(run, tmp_path):
    src = tmp_path / "src"
    (src / "a" / "cache").mkdir(parents=True)
    daemon, target, excluded = run(src, "a/cache")
    assert "backend=fanotify" in daemon.log.read_text()
    busy(tmp_path / "out")          # outside, busy: the daemon marks it
    sentinel(src, target, 1)
    (tmp_path / "out").rename(src / "a" / "cache" / "m")   # into an excluded place
    sentinel(src, target, 2)
    (src / "a").rename(src / "b")   # b/cache/m is in the tree now
    sentinel(src, target, 3)
    (src / "b" / "cache" / "m" / "new.jpg").write_bytes(b"new")
    (src / "b" / "cache" / "m" / "f0").write_bytes(b"rewritten")
    wait_exact(src, target, timeout=30, excluded=excluded)


def test_source_path_through_a_symlink(run, tmp_path):
    (tmp_path / "real" / "src" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    src = tmp_path / "link" / "src"
    daemon, target, excluded = run(src, "*.tmp")
    assert "backend=fanotify" in daemon.log.read_text()
    sentinel(src, target, 1)
    (src / "sub" / "x.jpg").write_bytes(b"x")
    sentinel(src, target, 2)
    (src / "sub" / "x.jpg").write_bytes(b"rewritten")
    wait_exact(src, target, timeout=30, excluded=excluded)


def test_default_watcher_with_a_file_system_mounted_below_the_root(run, tmp_path):
    """`auto` (the default now) took fanotify even with a mount below the root, whose
    files its filesystem mark never sees: inotify (the old default) watched them."""
    import subprocess
    src = tmp_path / "src"
    (src / "mnt").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(src / "mnt")],
                   check=True)
    try:
        daemon, target, excluded = run(src, "*.tmp")
        sentinel(src, target, 1)
        (src / "mnt" / "x.jpg").write_bytes(b"on the mount")
        sentinel(src, target, 2)
        wait_exact(src, target, timeout=20, excluded=excluded)
    finally:
        subprocess.run(["umount", "-l", str(src / "mnt")], check=False)
