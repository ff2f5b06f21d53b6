"""A non-root daemon's put into a mirrored directory of mode 0311 (write and search, no
read: an upload drop box), with fsync on (the default).

Shape: the source has `box/` of mode 0311 and a file arrives in it; the mirror's `box/`
has the same mode (mkdir gives it the source's bits). local_parents.WALK_FLAGS says the
walk uses O_PATH so that "a mirrored directory of mode 0311 stays writable to a non-root
daemon", and rename(2) into it needs write and search only.

What goes wrong: the file IS renamed into place, then the put fails with PermanentError
"EACCES: Permission denied: ." - the row is given up for good (a permanent error) while
the mirror already holds the new bytes, and `shipped` never learns of them. A move into
such a directory fails the same way after the rename happened. (Not new today: the
by-path fsync_dir before it opened the directory O_RDONLY as well.)

Diagnosis: mirrord/targets/local_parents.py fsync_at opens '.' O_RDONLY from the O_PATH
descriptor to fsync it, which needs read permission on the directory; called from
LocalTarget.put and LocalTarget.move (mirrord/targets/local.py) after the rename. A
directory that cannot be opened for reading cannot be fsynced by an unprivileged process
at all; that is no reason to report a rename that happened as a permanent failure.

With keep_deleted on, a keep in such a directory still fails: the keeps open it O_RDONLY
and fsync it (LocalTrash.keep, _move_in); left as a known limit (closing note, session 6).

Root ignores the mode bits (CAP_DAC_OVERRIDE), so the calls run in a forked child that
drops to uid/gid 65534 first (when the test runs as root; as another user it just runs).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import traceback
from pathlib import Path

import pytest

from mirrord.targets.mtime import ns_to_float

from .conftest import make_local

NS = 1_600_000_000_123_456_789
UID = 65534


def _as_nobody(work, conn) -> None:
    try:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setresgid(UID, UID, UID)
            os.setresuid(UID, UID, UID)
        conn.send(("ok", work()))
    except BaseException as exc:   # noqa: BLE001 - handed to the parent as the result
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def run_unprivileged(work):
    """work() in a forked child without root; its return value, or AssertionError with the
    child's exception."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_as_nobody, args=(work, child))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0, f"the child did not finish (exit {proc.exitcode})"
    status, value = parent.recv()
    assert status == "ok", value
    return value


@pytest.fixture
def tmp_path():
    """A directory UID can reach (pytest's own is 0700 to root), removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="mirrord-nonroot-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for top, dirs, _ in os.walk(d):   # a 0311 directory cannot be listed: open it up
            for n in dirs:
                os.chmod(os.path.join(top, n), 0o755)
        shutil.rmtree(d)


def _tree(tmp_path):
    """The target root and a source file, both owned by UID when running as root."""
    (tmp_path / "target").mkdir()
    src = tmp_path / "new"
    src.write_bytes(b"dropped")
    os.utime(src, ns=(NS, NS))
    if os.geteuid() == 0:
        for p in (tmp_path / "target", src):
            os.chown(p, UID, UID)
    return src


def test_a_put_into_a_0311_directory_succeeds(tmp_path):
    src = _tree(tmp_path)

    def work():
        t = make_local(tmp_path)
        t.open()
        try:
            t.mkdir("box", mode=0o311)
            t.put("box/f", str(src), size=7, mtime=ns_to_float(NS), mtime_ns=NS, mode=0o644)
        finally:
            t.close()
    run_unprivileged(work)
    assert (tmp_path / "target" / "box" / "f").read_bytes() == b"dropped"


def test_a_move_into_a_0311_directory_succeeds(tmp_path):
    src = _tree(tmp_path)

    def work():
        t = make_local(tmp_path)
        t.open()
        try:
            t.put("f", str(src), size=7, mtime=ns_to_float(NS), mtime_ns=NS, mode=0o644)
            t.mkdir("box", mode=0o311)
            t.move("f", "box/f")
        finally:
            t.close()
    run_unprivileged(work)
    assert (tmp_path / "target" / "box" / "f").read_bytes() == b"dropped"
