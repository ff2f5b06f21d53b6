"""Where a benchmark run's files live, and whether that file system measures the tools or a
quirk of its own.

Found by profiling the local burst with perf (2026-11-30): this machine's root file system is
ext4 with no journal, and there ext4's inode allocator passes over every inode freed in the
last minute (the last five while its inode-table block is not yet written back), one by one,
so that a crash cannot leave a reused inode looking like the deleted one (fs/ext4/ialloc.c:
recently_deleted(), RECENTCY_MIN 60 s and RECENTCY_DIRTY 300 s, called from
find_inode_bit() only when the super block has no journal).
After an arm removed its tree, each create of the next arm walked past thousands of freed
inodes: 45% of mirrord's CPU on the local burst, and `cp -r` of the burst's 5,000 files took
2.0-3.2 s against 0.2 s on a journaled ext4. That tax falls on whoever creates files: the
writer feeding mirrord's S3 burst (a peer copying a finished tree has none), both tools on a
local or ssh target. An upload volume on a server has a journal (mkfs.ext4's default; xfs
always), so a run reports on which kind its figures were taken, and `--scratch-image SIZE`
gives it a journaled ext4 of its own (a sparse image, loop-mounted; root only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def block_device(path: Path) -> str | None:
    """The kernel's name of the block device holding `path` ("vda", "loop0", "dm-1"), from
    /sys/dev/block/MAJOR:MINOR; None for a file system with no block device (tmpfs, overlay).
    Raises OSError when `path` cannot be stat'ed."""
    st = os.stat(path)
    link = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    return link.resolve().name if link.exists() else None


def describe(path: Path) -> str:
    """One phrase naming the kind of file system under `path`, as the run's header shows it:
    "ext4 without a journal (vda)", "ext4 with a journal (loop0)", or "not ext4 (...)".
    ext4 says whether it journals in /sys/fs/ext4/DEV/journal_task ("<none>" without one)."""
    dev = block_device(path)
    task = Path(f"/sys/fs/ext4/{dev}/journal_task") if dev else None
    if task is None or not task.exists():
        return f"not ext4 ({dev or 'no block device'})"
    journal = task.read_text().strip() != "<none>"
    return f"ext4 {'with' if journal else 'without'} a journal ({dev})"


def unjournaled_ext4(path: Path) -> bool:
    """True when `path` lies on ext4 with no journal, where creates after mass deletes are
    taxed (module docstring)."""
    return describe(path).startswith("ext4 without")


class JournaledImage:
    """A journaled ext4 of `size` bytes (a sparse image file under `parent`, loop-mounted) for
    one run; `with JournaledImage("40G", Path("/var/tmp")) as mnt:` yields the mount point and
    unmounts and deletes the image on the way out, whatever happened inside.

    size: as truncate(1) takes it ("40G"); only the blocks written use disk space. Needs root
    and a free loop device; raises subprocess.CalledProcessError (with mkfs's or mount's
    message) when either is missing."""

    def __init__(self, size: str, parent: Path):
        self.size = size
        self.parent = parent
        self.work: Path | None = None
        self.mount: Path | None = None

    def __enter__(self) -> Path:
        self.work = Path(tempfile.mkdtemp(prefix="mirrord-bench-fs-", dir=self.parent))
        image, mount = self.work / "scratch.img", self.work / "mnt"
        mount.mkdir()
        try:
            subprocess.run(["truncate", "-s", self.size, str(image)], check=True,
                           capture_output=True)
            # -q: quiet; -F: a regular file is fine; the journal is mkfs.ext4's default
            subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True,
                           capture_output=True)
            subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True,
                           capture_output=True)
        except BaseException:
            shutil.rmtree(self.work, ignore_errors=True)
            raise
        self.mount = mount
        return mount

    def __exit__(self, *exc: object) -> None:
        assert self.work is not None
        # a child still holding a file open makes umount fail: detach lazily then, the
        # kernel frees the loop device once the last file is closed
        if self.mount is not None and subprocess.run(
                ["umount", str(self.mount)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, check=False)
        shutil.rmtree(self.work, ignore_errors=True)
