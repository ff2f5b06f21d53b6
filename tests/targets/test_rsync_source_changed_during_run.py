"""The rsync target when the source changes between the plan's look and rsync's own,
against a real sshd.

rsync's sender reads the source itself, after BatchRunner's plan looked at it
(plan.want_source, which already refuses a kind other than the shipper saw). Found
in a flaky e2e test (tests/e2e/test_undelete_parent_file.py, rsync, 4 runs in 12 under
load): a directory item `tree` (a mkdir, which keeps nothing) was planned while the
source still had the directory; `rm -r tree; echo > tree` came before rsync's sender
looked; the run's --force replaced the host's tree, and tree/a.bin below it, by the
file, unkept, and `mirrord undelete tree/a.bin` found nothing. The same run removes a
directory whose source went in between (--delete-missing-args).

With keep_deleted on, rsync runs without --force: such an item fails alone and the
change's own events send it, kept. A put over a directory is kept or cleared by the
run's keep script first, so it needs no --force. Without keep_deleted nothing is kept
and the run still replaces: the mirror is exact at once. Each test changes the source
inside the window by hand (the run's first step), no timing.
"""

from __future__ import annotations

import os
import shutil

import pytest

from mirrord.targets.model import SyncItem
from mirrord.targets.rsync import transfer
from mirrord.trash import keeper
from tests.targets.conftest import make_rsync
from tests.targets.test_rsync_keep_in_run import WHEN, kept_files, source
from tests.targets.test_rsync_trash import root, write

WEEK = 7 * 86400.0


def open_target(sshd, *, keep: bool):
    """An opened rsync target on a fresh root, made from its config, keep_deleted on or off."""
    t = make_rsync(sshd, keep_deleted=WEEK if keep else 0.0)
    t.open()
    return t


@pytest.fixture
def kept_target(sshd):
    t = open_target(sshd, keep=True)
    yield t
    t.close()


@pytest.fixture
def plain_target(sshd):
    t = open_target(sshd, keep=False)
    yield t
    t.close()


def change_before_the_run(monkeypatch, change) -> list[list]:
    """Run `change()` once, as the first rsync run starts (after the plan looked); the
    argv of every run is returned."""
    real = transfer.run_rsync
    argvs: list = []
    done = []

    def run(t, src, dest, rels, **kw):
        if not done:
            done.append(1)
            change()
        proc = real(t, src, dest, rels, **kw)
        argvs.append(proc.args)
        return proc

    monkeypatch.setattr(transfer, "run_rsync", run)
    return argvs


def sync_seen(t, src, rel: str, kind: str, *, keep: bool) -> Exception | None:
    """What the Shipper does with an item it saw as `kind` (keeper.prepare first when the
    target keeps); the item's error, None when done."""
    st = os.lstat(src / rel)
    item = SyncItem(rel, kind, size=st.st_size if kind == "file" else 0, mtime=st.st_mtime,
                    mtime_ns=st.st_mtime_ns, source_root=str(src), source_rel=rel, when=WHEN)
    items = [item]
    if keep:
        items, errors = keeper.prepare(t, items)
        if errors[0] is not None:
            return errors[0]
    (res,) = t.sync(items)
    return res.error


def dir_becomes_file(src):
    def change():
        shutil.rmtree(src / "tree")
        (src / "tree").write_bytes(b"now a file")
    return change


def dir_goes(src):
    def change():
        shutil.rmtree(src / "tree")
    return change


@pytest.mark.parametrize("shape", [dir_becomes_file, dir_goes],
                         ids=["dir-became-a-file", "dir-removed"])
def test_a_directory_item_never_removes_the_hosts_files_unkept(kept_target, tmp_path,
                                                              monkeypatch, shape):
    t = kept_target
    write(t, "tree/a.bin", b"old kept bytes")
    src = source(tmp_path, {"tree/a.bin": b"old kept bytes"})
    argvs = change_before_the_run(monkeypatch, shape(src))
    sync_seen(t, src, "tree", "dir", keep=True)   # it may fail: the change's events follow
    assert argvs and all(b"--force" not in map(os.fsencode, a) for a in argvs), argvs
    on_host = root(t) / "tree" / "a.bin"
    assert on_host.is_file() and on_host.read_bytes() == b"old kept bytes", (
        f"the host's tree/a.bin was removed by the run unkept; trash: {kept_files(t)}")


def test_the_changes_own_event_then_keeps_the_directory(kept_target, tmp_path, monkeypatch):
    """The next step of the flaky e2e test: the put of the file `tree` that the change's
    events bring keeps the host's directory (and a.bin) before it lands."""
    t = kept_target
    write(t, "tree/a.bin", b"old kept bytes")
    src = source(tmp_path, {"tree/a.bin": b"old kept bytes"})
    change_before_the_run(monkeypatch, dir_becomes_file(src))
    sync_seen(t, src, "tree", "dir", keep=True)
    assert sync_seen(t, src, "tree", "file", keep=True) is None
    assert (root(t) / "tree").read_bytes() == b"now a file"
    assert list(kept_files(t).values()) == [b"old kept bytes"]


def test_a_put_over_a_directory_holding_no_file_needs_no_force(kept_target, tmp_path):
    """A directory of only an empty directory and a symlink (nothing a keep holds) where
    a file comes, on a target the journal did not know it of: cleared by the keep script,
    as --force cleared it; the put lands at once."""
    t = kept_target
    (root(t) / "x" / "empty").mkdir(parents=True)
    os.symlink("/etc/hostname", root(t) / "x" / "link")
    src = source(tmp_path, {"x": b"a file"})
    assert sync_seen(t, src, "x", "file", keep=True) is None
    assert (root(t) / "x").read_bytes() == b"a file"
    assert kept_files(t) == {}


def test_a_put_over_a_directory_with_files_keeps_them(kept_target, tmp_path):
    t = kept_target
    write(t, "x/deep/f.txt", b"below")
    src = source(tmp_path, {"x": b"a file"})
    assert sync_seen(t, src, "x", "file", keep=True) is None
    assert (root(t) / "x").read_bytes() == b"a file"
    assert list(kept_files(t).values()) == [b"below"]


def test_a_file_item_whose_source_became_a_directory_kept_the_hosts_file(
        kept_target, tmp_path, monkeypatch):
    """The reverse shape: the put kept the host's file (it was to be overwritten), the run
    then made the directory the source holds now; nothing of the old file is lost."""
    t = kept_target
    write(t, "y", b"the host's old y")
    src = source(tmp_path, {"y": b"the new y"})

    def change():
        os.unlink(src / "y")
        (src / "y").mkdir()
    change_before_the_run(monkeypatch, change)
    sync_seen(t, src, "y", "file", keep=True)
    assert b"the host's old y" in kept_files(t).values() or (
        (root(t) / "y").is_file() and (root(t) / "y").read_bytes() == b"the host's old y")


def test_without_keep_deleted_the_run_still_replaces(plain_target, tmp_path, monkeypatch):
    """Nothing is kept there: the run replaces the directory by the file the source holds
    now, as before (--force), and the mirror is exact without waiting for the events."""
    t = plain_target
    write(t, "tree/a.bin", b"old")
    src = source(tmp_path, {"tree/a.bin": b"old"})
    argvs = change_before_the_run(monkeypatch, dir_becomes_file(src))
    sync_seen(t, src, "tree", "dir", keep=False)
    assert any(b"--force" in map(os.fsencode, a) for a in argvs), argvs
    assert (root(t) / "tree").read_bytes() == b"now a file"
