"""The local target's temp files: staged in `.mirrord/tmp/` (or beside the destination on
another mount, recorded by a marker), and swept by the next open() after a kill -9.

The put killed here reads from a FIFO whose writer stops half way, so the kill lands
mid-copy by construction: no timing is involved, only bounded polls.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirrord.targets.local import LocalTarget
from mirrord.targets.local_stage import BESIDE_PREFIX, STAGE_DIR

CHILD = """
import sys
from mirrord.targets.local import LocalTarget
t = LocalTarget("local", sys.argv[1])
t.open()
t.put(sys.argv[2], sys.argv[3], size=0, mtime=1.0e9)
"""


@contextlib.contextmanager
def tmpfs(path: Path):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def all_files(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root)
            for n in names}


def wait_for(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def kill_mid_put(root: Path, path: str, tmp_path: Path, partial) -> list[Path]:
    """Start a put of `path` in a child process, feed it half a file, wait until
    `partial()` shows the temp files it writes, kill -9 it; returns them."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), path, str(fifo)])
    try:
        with open(fifo, "wb") as writer:    # opens once the child opened the reading end
            writer.write(b"x" * (1 << 20))
            writer.flush()
            left = wait_for(partial, "a partial temp file")
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return left


def prepare(root: Path) -> None:
    """Create the root and its .mirrord/tmp, then let go (an open target holds the lock
    that keeps others from sweeping)."""
    t = LocalTarget("local", root)
    t.open()
    t.close()


def staged(root: Path):
    return lambda: [p for p in (root / STAGE_DIR).iterdir() if p.stat().st_size >= 1 << 20]


def test_kill_9_mid_put_then_the_next_open_sweeps_the_staged_copy(tmp_path):
    root = tmp_path / "mirror"
    prepare(root)
    left = kill_mid_put(root, "a/big.bin", tmp_path, staged(root))
    assert all(p.exists() for p in left)
    assert [e.path for e in LocalTarget("local", root).list() if not e.is_dir] == []   # not listed
    t = LocalTarget("local", root)
    t.open()
    try:
        assert os.listdir(root / STAGE_DIR) == []
        assert not [f for f in all_files(root) if not f.startswith((".mirrord/mirrord-target-",
                                                                    ".mirrord/open-"))]
    finally:
        t.close()


def test_a_put_onto_another_mount_stages_beside_and_leaves_nothing(tmp_path):
    root = tmp_path / "mirror"
    with tmpfs(root / "mnt"):
        src = tmp_path / "src.bin"
        src.write_bytes(b"content")
        t = LocalTarget("local", root)
        t.open()
        try:
            entry = t.put("mnt/sub/f.bin", str(src), size=7, mtime=1.0e9, mode=0o640)
            assert entry.size == 7 and t.read("mnt/sub/f.bin") == b"content"
            assert (os.stat(root / "mnt/sub/f.bin").st_mode & 0o777) == 0o640
            assert all_files(root / "mnt") == {"sub/f.bin"}
            assert os.listdir(root / STAGE_DIR) == []
        finally:
            t.close()


def test_kill_9_mid_put_onto_another_mount_is_swept_through_its_marker(tmp_path):
    root = tmp_path / "mirror"
    prepare(root)
    with tmpfs(root / "mnt"):
        user = root / "mnt" / (BESIDE_PREFIX + "users-own")   # same prefix, no marker: kept
        user.write_bytes(b"mine")

        def beside():
            return [p for p in (root / "mnt").iterdir()
                    if p.name.startswith(BESIDE_PREFIX) and p != user
                    and p.stat().st_size >= 1 << 20]

        left = kill_mid_put(root, "mnt/big.bin", tmp_path, beside)
        markers = os.listdir(root / STAGE_DIR)
        assert left[0].exists() and len(markers) == 1
        t = LocalTarget("local", root)
        t.open()
        try:
            assert not left[0].exists() and os.listdir(root / STAGE_DIR) == []
            assert user.read_bytes() == b"mine"
            assert [e.path for e in t.list() if not e.is_dir] == [f"mnt/{user.name}"]
        finally:
            t.close()


def test_open_does_not_sweep_while_another_opener_holds_the_target(tmp_path):
    root = tmp_path / "mirror"
    first = LocalTarget("local", root)
    first.open()
    try:
        in_flight = root / STAGE_DIR / "tmpinflight"
        in_flight.write_bytes(b"being written by the first opener")
        second = LocalTarget("local", root)
        second.open()
        second.close()
        assert in_flight.exists()
    finally:
        first.close()
    again = LocalTarget("local", root)
    again.open()
    again.close()
    assert not in_flight.exists()


@pytest.mark.parametrize("name", ["heartbeat.json", "state.json"])
def test_write_meta_is_staged_and_leaves_nothing(tmp_path, name):
    t = LocalTarget("local", tmp_path / "mirror")
    t.open()
    try:
        t.write_meta(name, b"{}")
        t.write_meta(name, b'{"v": 2}')
        assert t.read_meta(name) == b'{"v": 2}'
        assert os.listdir(tmp_path / "mirror" / STAGE_DIR) == []
    finally:
        t.close()


def test_a_read_only_mirror_still_opens_and_reads_its_heartbeat(tmp_path):
    """failover and the health check open the mirror only to read `.mirrord/heartbeat.json`
    (their units make it read-only): open() must not need to write there."""
    root = tmp_path / "mirror"
    with tmpfs(root):
        writer = LocalTarget("local", root)
        writer.open()
        writer.write_meta("heartbeat.json", b'{"version": 1}')
        writer.close()
        (root / STAGE_DIR).rmdir()
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        reader = LocalTarget("local", root)
        reader.open()
        try:
            assert reader.read_meta("heartbeat.json") == b'{"version": 1}'
        finally:
            reader.close()


def test_a_put_over_a_directory_goes_on_past_a_file_another_worker_removed(tmp_path, monkeypatch):
    """A put renamed onto a name where a directory stands removes the directory first;
    a file below it removed meanwhile (another worker's delete in the same batch) does not
    stop that removal (shutil.rmtree raised at the first FileNotFoundError: the put failed)."""
    root = tmp_path / "mirror"
    root.mkdir()
    t = LocalTarget("local", root)
    t.open()
    try:
        (root / "a" / "b").mkdir(parents=True)
        for n in ("x", "y"):
            (root / "a" / "b" / n).write_bytes(b"old")
        src = tmp_path / "new"
        src.write_bytes(b"a file now")
        real_unlink, taken = os.unlink, []

        def raced(path, *a, dir_fd=None, **kw):
            if os.fsdecode(path) in ("x", "y") and not taken:   # the other worker's delete
                taken.append(path)
                real_unlink(path, dir_fd=dir_fd)
            return real_unlink(path, *a, dir_fd=dir_fd, **kw)

        monkeypatch.setattr(os, "unlink", raced)
        t.put("a", str(src), size=src.stat().st_size, mtime=1.0e9)
        monkeypatch.undo()
        assert taken and (root / "a").read_bytes() == b"a file now"
    finally:
        t.close()
