"""A local target's tree removal that loses an entry on the way (another worker's delete or
move below it) goes on and removes the rest; it never reports a directory still on the
mirror as removed.

Found by the churn test (inotify, under load): rmtree listed a directory, another worker's
delete took a file from under it, CPython 3.11's rmtree stopped at that FileNotFoundError
and LocalTarget.delete took it for "already gone"; twice in a row (itemwise.sync_one tries
once more) left an empty directory on the mirror that no shipped row named. The removal is
made to land between rmtree's listing and its unlink by wrapping os.scandir: no timing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from mirrord.errors import PermanentError
from mirrord.targets.local import LocalTarget


@pytest.fixture
def local(tmp_path: Path):
    t = LocalTarget("local", tmp_path / "mirror", fsync=False)
    t.open()
    yield t
    t.close()


def _rename_after_listing(monkeypatch, src: Path, dst: Path) -> None:
    """The first listing of src's directory is followed by os.rename(src, dst): what another
    worker's target.move does while rmtree walks the tree."""
    real = os.scandir

    @contextlib.contextmanager
    def listed(entries):
        yield iter(entries)

    def scandir(*args, **kwargs):
        with real(*args, **kwargs) as it:
            entries = list(it)
        if src.exists() and any(e.name == src.name for e in entries):
            os.rename(src, dst)
        return listed(entries)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_tree_removal_goes_on_past_a_file_moved_out_under_it(local, monkeypatch):
    root = Path(local.root)
    (root / "a" / "sub").mkdir(parents=True)
    for name in ("x.jpg", "y.jpg", "sub/z.jpg"):
        (root / "a" / name).write_bytes(b"data")
    _rename_after_listing(monkeypatch, root / "a" / "x.jpg", root / "moved.jpg")
    local.delete("a", tree=True)
    monkeypatch.undo()
    assert not (root / "a").exists()
    assert (root / "moved.jpg").read_bytes() == b"data"   # the move's result is untouched


def test_a_tree_removal_still_reports_other_errors(local, monkeypatch):
    root = Path(local.root)
    (root / "a").mkdir()
    (root / "a" / "x.jpg").write_bytes(b"data")

    def unlink(*args, **kwargs):   # EACCES (the tests run as root, who ignores modes)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(PermanentError):
        local.delete("a", tree=True)
    monkeypatch.undo()
    assert (root / "a" / "x.jpg").exists()
