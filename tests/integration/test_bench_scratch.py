"""The benchmark's scratch file system (bench/scratch.py), on the real kernel.

ext4 without a journal taxes every create after a mass delete (the inode allocator walks
past each recently deleted inode), so the run says which kind of file system its figures
come from, and `--scratch-image` gives it a journaled ext4 of its own. CI runs as root, so
loop devices and mkfs.ext4 are there; nothing here is timed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.__main__ import scratch_line
from bench.scratch import JournaledImage, describe, unjournaled_ext4


def _mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in
               Path("/proc/self/mounts").read_text().splitlines())


def test_the_image_is_a_journaled_ext4_and_goes_away_after_the_run(tmp_path):
    with JournaledImage("64M", tmp_path) as mnt:
        assert _mounted(mnt)
        assert describe(mnt).startswith("ext4 with a journal (loop")
        assert not unjournaled_ext4(mnt)
        (mnt / "f").write_bytes(b"x" * 4096)
        assert (mnt / "f").read_bytes() == b"x" * 4096
    assert not _mounted(mnt)
    assert list(tmp_path.iterdir()) == []     # image and mount point removed


def test_the_image_is_unmounted_when_the_run_fails_inside(tmp_path):
    with pytest.raises(RuntimeError), JournaledImage("64M", tmp_path) as mnt:
        raise RuntimeError("a workload crashed")
    assert not _mounted(mnt)
    assert list(tmp_path.iterdir()) == []


def test_an_image_that_cannot_be_made_leaves_nothing_behind(tmp_path):
    with pytest.raises(subprocess.CalledProcessError), JournaledImage("not-a-size", tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_ext4_without_a_journal_is_named_so_and_warned_of(tmp_path):
    image, mnt = tmp_path / "nj.img", tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        fs = describe(mnt)
        assert fs.startswith("ext4 without a journal (loop")
        assert unjournaled_ext4(mnt)
        assert "inflated" in scratch_line(fs)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_file_system_that_is_not_ext4_is_named_so(tmp_path):
    mnt = tmp_path / "t"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        assert describe(mnt) == "not ext4 (no block device)"
        assert not unjournaled_ext4(mnt)
        assert scratch_line(describe(mnt)) == "- scratch: not ext4 (no block device)"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
