"""write_meta when `.mirrord/<name>` is a directory, or a symlink to one, on the targets whose
root is a directory (local, rsync through a real sshd).

Shape: `.mirrord/heartbeat.json -> /elsewhere/dir` (planted like every link of
tests/targets/test_meta_dir_planted_symlink.py: open() makes `.mirrord/` real, not what is
in it), or `.mirrord/heartbeat.json/` a real directory; then write_meta("heartbeat.json").

What goes wrong (found by trying it), rsync: RsyncTarget.write_meta runs
`mv -f -- "$t" ./.mirrord/heartbeat.json` without -T; GNU mv takes a destination that is
a directory, or a symlink to one, as "move into it" (coreutils mv: "If the last argument
names an existing directory, mv moves each other given file into a file with the same
name in that directory"; it follows the symlink to find that out). So the temp file
`meta.XXXXXX` is written into the OUTSIDE directory, and write_meta returns as if done:
the heartbeat `mirrord failover` reads is never written (read_meta returns None or the
stale bytes) and nothing says so. With a real directory there, the same: the temp file
lands in `.mirrord/heartbeat.json/`, write_meta "succeeds", read_meta returns None.

Diagnosis: mirrord/targets/rsync/target.py write_meta: `mv -f` should be `mv -T -f`
(replace the name itself; -T refuses a non-empty directory, which is then an error, or
the directory is removed first like put() does), the same -T the trash restore uses.
"""

from __future__ import annotations

import contextlib
import os

from mirrord.errors import PermanentError, RetryableError

from .test_local_put_walk import outside, snapshot  # noqa: F401 - outside: the fixture
from .test_planted_symlinks import dir_target, root_of  # noqa: F401 - dir_target: the fixture


def test_write_meta_writes_nothing_through_a_symlinked_meta_file(dir_target, outside):
    os.symlink(outside, root_of(dir_target) / ".mirrord" / "heartbeat.json")
    before = snapshot(outside)
    # refusing (an error) would be acceptable; writing outside is not
    with contextlib.suppress(PermanentError, RetryableError):
        dir_target.write_meta("heartbeat.json", b'{"beat": 1}')
    assert snapshot(outside) == before


def test_write_meta_over_a_directory_is_written_or_refused(dir_target):
    """A directory at the meta name: write_meta either replaces it (read_meta then returns
    the bytes) or raises; returning as if done while nothing can be read back is the fault."""
    (root_of(dir_target) / ".mirrord" / "heartbeat.json").mkdir()
    try:
        dir_target.write_meta("heartbeat.json", b'{"beat": 2}')
    except (PermanentError, RetryableError):
        return   # refused, and said so
    assert dir_target.read_meta("heartbeat.json") == b'{"beat": 2}'


def test_write_meta_after_meta_dir_planted_while_open(dir_target, tmp_path, outside):
    """`.mirrord -> /elsewhere` planted AFTER open() (the daemon writes the heartbeat every
    heartbeat_interval for as long as it runs, so open() making `.mirrord/` real once does
    not cover it). Local holds: Staging.write makes `.mirrord/` real on every write
    (Staging._own_area). Rsync: write_meta runs `mkdir -p .mirrord/rsync-tmp`, `mktemp` and
    `mv` by path, so the temp file's directory and the heartbeat are written in
    /elsewhere (diagnosis: rsync write_meta trusts open()'s MKDIRS; it wants the same
    `mkdirs ./.mirrord/rsync-tmp` in its own script)."""
    meta = root_of(dir_target) / ".mirrord"
    meta.rename(tmp_path / "old-meta")
    os.symlink(outside, meta)
    before = snapshot(outside)
    with contextlib.suppress(PermanentError, RetryableError):
        dir_target.write_meta("heartbeat.json", b'{"beat": 3}')
    assert snapshot(outside) == before
