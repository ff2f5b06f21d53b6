"""A file truncated and rewritten in place while a target reads it never reaches the mirror
torn, and a send whose file changed meanwhile is not recorded as shipped.

Found by trying it (a script rewriting files in place with keep_deleted on): the trash held
0-byte versions the source never closed, because the read lease is released once observe()
has looked and the body is read later. Pre-commit checks (the local target before its
rename, S3 before its PutObject: fsutil.check_read_whole) keep a torn body off the mirror;
the shipper's check after every send (observe.changed_since) covers every target, rsync
included, whose own process reads the file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.errors import SourceBusy
from mirrord.fsutil import check_read_whole
from mirrord.journal import Op
from mirrord.observe import changed_since, observe
from mirrord.shipper import Shipper
from mirrord.targets import local_stage
from mirrord.targets.local import LocalTarget
from mirrord.targets.memory import MemoryTarget

S, T = "up", "t"
OLD, NEW = b"old version " * 100, b"new!"


def rewrite(path: Path, data: bytes) -> None:
    """What a PHP script rewriting a file in place does: open with O_TRUNC, write, close
    (the mtime moves on: wait a tick of the coarse clock first)."""
    time.sleep(0.02)
    with open(path, "wb") as fh:
        fh.write(data)


def test_check_read_whole_passes_a_quiet_file_and_refuses_one_rewritten_during_the_read(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(OLD)
    with open(f, "rb") as fh:
        st = os.fstat(fh.fileno())
        check_read_whole(fh.fileno(), st, len(fh.read()), len(OLD))          # quiet: no error
    with open(f, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = fh.read(10)
        rewrite(f, NEW)
        data += fh.read()
        with pytest.raises(SourceBusy, match="changed while it was read"):
            check_read_whole(fh.fileno(), st, len(data), len(OLD))


def test_changed_since_sees_a_rewrite_a_removal_and_nothing_else(tmp_path):
    (tmp_path / "f").write_bytes(OLD)
    for keep_open in (True, False):
        seen = observe(str(tmp_path), "f", keep_open=keep_open)
        assert not changed_since(seen, str(tmp_path), "f")
        rewrite(tmp_path / "f", NEW)
        assert changed_since(seen, str(tmp_path), "f")
        if seen.fd is not None:
            os.close(seen.fd)
    seen = observe(str(tmp_path), "f", keep_open=False)
    (tmp_path / "f").unlink()
    assert changed_since(seen, str(tmp_path), "f")


def test_the_local_target_never_installs_a_body_rewritten_while_it_was_copied(tmp_path, monkeypatch):
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    src.mkdir()
    (src / "f").write_bytes(OLD)
    target = LocalTarget(T, str(mirror), fsync=False)
    target.open()
    target.put("f", str(src / "f"), size=len(OLD), mtime=1.0)

    real_copy = local_stage.copy_to_end

    def copy_torn(src_fd, dst_fd):
        part = os.write(dst_fd, os.read(src_fd, 5))   # part of the old body, then the writer strikes
        rewrite(src / "f", NEW)
        return part + real_copy(src_fd, dst_fd)

    monkeypatch.setattr(local_stage, "copy_to_end", copy_torn)
    rewrite(src / "f", OLD + b"2")
    with pytest.raises(SourceBusy):
        target.put("f", str(src / "f"), size=len(OLD) + 1, mtime=2.0)
    assert (mirror / "f").read_bytes() == OLD                       # the old version stands
    assert not [p for p in (mirror / ".mirrord" / "tmp").iterdir()]  # no temp file left


class ReadsLate(MemoryTarget):
    """A target whose own process reads the source at some point during sync() (rsync):
    here the writer rewrites the file just before the target reads it."""

    features = MemoryTarget.features

    def __init__(self, src: Path):
        super().__init__(T)
        self.src = src

    def sync(self, items):
        rewrite(self.src / "f", NEW)
        return super().sync(items)


@pytest.mark.parametrize("make", ["reads-late", "local"])
def test_a_send_whose_file_changed_meanwhile_is_a_wait_not_shipped(tmp_path, make, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(OLD)
    if make == "local":   # the file is rewritten between observe() and the target's open
        target = LocalTarget(T, str(tmp_path / "mirror"), fsync=False)
        stage = type(target._staging)
        orig = stage._copy

        def copy_after_rewrite(self, *a, **kw):
            rewrite(src / "f", NEW)
            return orig(self, *a, **kw)

        monkeypatch.setattr(stage, "_copy", copy_after_rewrite)
    else:
        target = ReadsLate(src)
    target.open()
    sh = Shipper({T: target}, [SourceConfig(S, src, (T,))], {T: 1})
    try:
        (out,) = sh.run_ops(target, [Op(1, 1, T, S, "f", "put", None, False, False, 0, time.time())])
    finally:
        sh.shutdown()
    # the local target refuses it itself (its size is not what was observed); a target
    # whose own process reads the file is caught by the shipper's look afterwards
    said = "changed while it was read" if make == "local" else "changed at the source while it was being sent"
    assert out.error and said in out.error, out.error
    assert out.busy and not out.permanent          # a wait, retried; not a failure
    # refused before it was stored (local) or caught after it was (the target holds it:
    # the mass-change alarm takes that version as held, mirrord.journal.first_copies)
    assert out.landed == (make != "local")


def test_a_file_truncated_between_observe_and_the_copy_is_refused_by_its_size(tmp_path):
    """The 0-byte versions the breaker found: the writer's O_TRUNC came after observe()
    looked (lease free, N bytes) and before the target opened the file."""
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    src.mkdir()
    (src / "f").write_bytes(OLD)
    target = LocalTarget(T, str(mirror), fsync=False)
    target.open()
    target.put("f", str(src / "f"), size=len(OLD), mtime=1.0)
    (src / "f").write_bytes(b"")                 # truncated: the writer has not written yet
    with pytest.raises(SourceBusy):
        target.put("f", str(src / "f"), size=len(OLD), mtime=2.0)   # observed: len(OLD)
    assert (mirror / "f").read_bytes() == OLD


def test_observe_describes_a_closed_version_even_when_its_writer_closes_during_the_look(
        tmp_path, monkeypatch):
    """A rewrite in place is between its O_TRUNC and its write when observe() first
    fstats the file (0 bytes), and its writer closes before the read lease is asked for:
    what observe() reports must be the closed version, taken under the lease, not the
    0 bytes seen before it. Seen in CI (tests/e2e/test_rewrite_in_place.py): a later
    truncation to 0 bytes matched that stale size in every check of the read, and the
    local mirror held a 0-byte version the source never closed."""
    f = tmp_path / "f"
    f.write_bytes(OLD)
    writer = open(f, "wb")                      # O_TRUNC: 0 bytes, open for writing
    real_fstat = os.fstat
    first = []

    def fstat_then_the_writer_closes(fd):
        st = real_fstat(fd)
        if not first:
            first.append(st)
            writer.write(NEW)                   # the writer finishes right after this look
            writer.close()
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_the_writer_closes)
    seen = observe(str(tmp_path), "f", keep_open=True)
    monkeypatch.undo()
    try:
        assert first and first[0].st_size == 0   # the first look did see the truncated file
        assert (seen.kind, seen.size) == ("file", len(NEW))
        assert seen.mtime_ns == os.stat(f).st_mtime_ns
    finally:
        os.close(seen.fd)
