"""The local target keeps what a put replaces inside the put (Features.keep_by_condition,
SyncItem.keep_stamp; issue 17): the same keeping as keep(path, coming='file'), asked
only when something is there.

Through the real engine path (Shipper -> keeper.prepare -> LocalTarget.sync) where the
engine's part matters, on a real directory; inodes are checked on disk. Every test that
says "nothing kept" also checks that the new bytes landed, so it cannot pass on a put
that did nothing.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.errors import PermanentError
from mirrord.executors import serial
from mirrord.journal import Op
from mirrord.shipper import Shipper
from mirrord.targets.model import SyncItem
from mirrord.targets.mtime import ns_to_float
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.model import DIR_REMOVED, OVERWRITTEN, TRASH, stamp_of, trash_rel

from .test_local_trash import local, on_disk  # noqa: F401 - local: the fixture

S = "up"
NS = 1_600_000_000_123_456_789
WHEN = 1_795_000_000.25
STAMP = stamp_of(WHEN)
_ids = itertools.count(1)


@pytest.fixture
def src(tmp_path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root


def write(src: Path, path: str, data: bytes, ns: int = NS) -> Path:
    f = src / path
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(data)
    os.utime(f, ns=(ns, ns))
    return f


def ship(t, src: Path, *paths: str, when: float = WHEN):
    """The Shipper with keep_deleted on runs one batch of put ops; their Outcomes."""
    shipper = Shipper({t.name: t}, [SourceConfig(S, src, (t.name,))], {t.name: 1},
                      executor=serial, keep={t.name: KeepPolicy(3600.0)})
    ops = [Op(next(_ids), 1, t.name, S, p, "put", None, False, False, 0, when) for p in paths]
    return shipper.run_ops(t, ops)


def trash_files(t) -> set[str]:
    top = on_disk(t, TRASH)
    return {os.path.relpath(os.path.join(d, n), top) for d, _, names in os.walk(top)
            for n in names}


class Calls:
    """Which paths the keeper asked the target to keep ahead of the batch."""

    def __init__(self, t, monkeypatch):
        self.asked: list[tuple[str, str]] = []
        real = t.keep_many

        def keep_many(requests):
            self.asked += [(p, c) for p, _, c in requests]
            return real(requests)
        monkeypatch.setattr(t, "keep_many", keep_many)


def test_new_files_are_asked_nothing_ahead(local, src, monkeypatch):
    assert local.features.keep_by_condition and local.features.keeps_parents_in_put
    write(src, "a/b/new1", b"one")
    write(src, "a/b/new2", b"two")
    calls = Calls(local, monkeypatch)
    outs = ship(local, src, "a/b/new1", "a/b/new2")
    assert [o.error for o in outs] == [None, None]
    assert calls.asked == []   # neither the files nor their parents: the put looks itself
    assert local.read("a/b/new1") == b"one" and local.read("a/b/new2") == b"two"
    assert trash_files(local) == set()


def test_an_overwrite_in_the_put_links_the_old_inode_into_the_trash(local, src, monkeypatch):
    write(src, "x/o.txt", b"old")
    assert ship(local, src, "x/o.txt", when=WHEN - 60)[0].error is None
    ino = os.lstat(on_disk(local, "x/o.txt")).st_ino
    write(src, "x/o.txt", b"newer", ns=NS + 1)
    calls = Calls(local, monkeypatch)
    assert ship(local, src, "x/o.txt")[0].error is None
    assert ("x/o.txt", "file") not in calls.asked          # kept by the put itself
    kept = os.lstat(on_disk(local, trash_rel(STAMP, OVERWRITTEN, "x/o.txt")))
    assert (kept.st_ino, kept.st_nlink, kept.st_mtime_ns) == (ino, 1, NS)
    assert local.read("x/o.txt") == b"newer"
    assert [(k.path, k.why, k.size) for k in local.trash_list()] == [("x/o.txt", OVERWRITTEN, 3)]


def test_the_same_version_already_there_is_not_kept(local, src):
    write(src, "same", b"bytes")
    assert ship(local, src, "same", when=WHEN - 60)[0].error is None
    ino = os.lstat(on_disk(local, "same")).st_ino
    assert ship(local, src, "same")[0].error is None       # a second put of one version
    assert os.lstat(on_disk(local, "same")).st_ino != ino  # it was put again, not skipped
    assert trash_files(local) == set()


def test_a_directory_where_the_file_goes_is_kept_whole(local, src, tmp_path):
    os.makedirs(on_disk(local, "d/sub"))
    Path(on_disk(local, "d/sub/inner")).write_bytes(b"inner bytes")
    write(src, "d", b"a file now")
    assert ship(local, src, "d")[0].error is None
    assert local.read("d") == b"a file now"
    assert trash_files(local) == {f"{STAMP}.{DIR_REMOVED}/d/sub/inner"}


def test_a_retry_after_kill_between_keep_and_put_keeps_nothing_twice(local, src, tmp_path):
    """kill -9 after the put's keep (the link) but before its rename: the retry, even under
    another stamp (a restart's catch-up records the change anew), keeps nothing more."""
    write(src, "k.txt", b"old")
    assert ship(local, src, "k.txt", when=WHEN - 60)[0].error is None
    assert local.keep("k.txt", stamp=STAMP, coming="file") == 3   # the put's keep, then kill -9
    write(src, "k.txt", b"newer", ns=NS + 1)
    assert ship(local, src, "k.txt", when=WHEN + 30)[0].error is None
    assert local.read("k.txt") == b"newer"
    assert [(k.stamp, k.why) for k in local.trash_list()] == [(STAMP, OVERWRITTEN)]


def test_a_keep_that_fails_overwrites_nothing(local, tmp_path):
    # keeping is by link only: a file on another mount below the root cannot be kept
    from .test_local_staging import tmpfs

    with tmpfs(Path(local.root) / "mnt"):
        f = write(tmp_path / "s", "v1", b"on tmpfs")
        local.put("mnt/f", str(f), size=8, mtime=ns_to_float(NS), mtime_ns=NS)
        g = write(tmp_path / "s", "v2", b"replacement")
        item = SyncItem("mnt/f", "file", local=str(g), size=11, mtime=ns_to_float(NS + 1),
                        mtime_ns=NS + 1, when=WHEN, keep_stamp=STAMP)
        (res,) = local.sync([item])
        assert isinstance(res.error, PermanentError) and "another mount" in str(res.error)
        assert local.read("mnt/f") == b"on tmpfs"


def test_a_put_without_a_keep_stamp_keeps_nothing(local, tmp_path):
    f = write(tmp_path / "s", "v1", b"old")
    local.put("p", str(f), size=3, mtime=ns_to_float(NS), mtime_ns=NS)
    g = write(tmp_path / "s", "v2", b"new!", ns=NS + 1)
    local.put("p", str(g), size=4, mtime=ns_to_float(NS + 1), mtime_ns=NS + 1)
    assert local.read("p") == b"new!"
    assert trash_files(local) == set()


# ------------------------------------------------------------------ the parents a batch asks
def test_parents_are_looked_at_from_one_descriptor_per_directory(local, monkeypatch):
    from mirrord.targets import local_dirs, local_trash

    os.makedirs(on_disk(local, "a/b/c"))
    walks: list[str] = []
    for module in (local_dirs, local_trash):
        real = module.open_dir_beneath
        monkeypatch.setattr(module, "open_dir_beneath",
                            lambda root, rel, *a, _real=real, **k: walks.append(rel) or _real(root, rel, *a, **k))
    parents = [("a", STAMP, "dir"), ("a/b", STAMP, "dir"), ("a/b/c", STAMP, "dir"),
               ("x", STAMP, "dir"), ("x/y", STAMP, "dir")]
    assert local.keep_many(parents) == [None] * 5
    assert walks == [""]                       # the root once; the rest by openat from it
    assert not os.path.exists(on_disk(local, TRASH))


def test_a_file_where_a_parent_goes_is_kept_and_later_requests_see_the_change(local, tmp_path):
    os.makedirs(on_disk(local, "a"))
    Path(on_disk(local, "a/b")).write_bytes(b"a file where a directory goes")
    os.makedirs(on_disk(local, "t/u"))
    Path(on_disk(local, "t/u/f")).write_bytes(b"in a tree")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "v").write_bytes(b"not the mirror's")
    os.symlink(outside, on_disk(local, "ln"))
    got = local.keep_many([("a", STAMP, "dir"), ("a/b", STAMP, "dir"), ("ln/v", STAMP, "dir"),
                           ("t", STAMP, "absent"), ("t/u", STAMP, "dir"), ("bad/../x", STAMP, "dir")])
    assert got[:5] == [None] * 5 and isinstance(got[5], PermanentError)
    assert trash_files(local) == {f"{STAMP}.deleted/a/b", f"{STAMP}.{DIR_REMOVED}/t/u/f"}
    assert not os.path.lexists(on_disk(local, "a/b")) and not os.path.lexists(on_disk(local, "t"))
    assert (outside / "v").read_bytes() == b"not the mirror's"


def test_a_file_where_a_parent_goes_is_kept_by_the_put_itself(local, src, monkeypatch):
    """`rm d; mkdir d; echo > d/z` at the source, shipped as the put of d/z alone: the file
    d on the mirror is kept as deleted, under the put's stamp, by the put's parent walk;
    nothing is asked ahead. Found by trying it (keeper.keep_items): the file vanished
    unkept when nothing looked at the parents."""
    os.makedirs(on_disk(local, "p"))
    Path(on_disk(local, "p/d")).write_bytes(b"the file d was")
    write(src, "p/d/z", b"z inside d")
    calls = Calls(local, monkeypatch)
    assert ship(local, src, "p/d/z")[0].error is None
    assert calls.asked == []
    assert local.read("p/d/z") == b"z inside d"
    assert trash_files(local) == {f"{STAMP}.deleted/p/d"}
    (k,) = local.trash_list()
    assert (k.path, k.stamp, k.size) == ("p/d", STAMP, len(b"the file d was"))


def test_a_parent_whose_keep_fails_leaves_the_file_in_the_way_standing(local, tmp_path):
    """A keep that fails fails the put: the file where a parent goes is not removed."""
    from .test_local_staging import tmpfs

    with tmpfs(Path(local.root) / "mnt"):
        Path(on_disk(local, "mnt/d")).write_bytes(b"a file on another mount")
        f = write(tmp_path / "s", "z", b"z")
        item = SyncItem("mnt/d/z", "file", local=str(f), size=1, mtime=ns_to_float(NS),
                        mtime_ns=NS, when=WHEN, keep_stamp=STAMP)
        (res,) = local.sync([item])
        assert isinstance(res.error, PermanentError)
        assert local.read("mnt/d") == b"a file on another mount"


def test_a_parent_made_a_directory_by_a_racing_worker_during_its_keep_is_used(local, src,
                                                                             monkeypatch):
    """The file where a parent goes is kept; before the walk unlinks it, another worker (a
    mkdir of that directory, a put beside) has put a directory there: the walk goes on
    into it. Seen under the dir flip (e2e test_dir_flip_keeps_once): the unlink's EISDIR
    failed the put as permanent, and its row waited ten minutes."""
    os.makedirs(on_disk(local, "p"))
    Path(on_disk(local, "p/d")).write_bytes(b"the file d was")
    write(src, "p/d/z", b"z inside d")
    real_keep = local.keep

    def keep_then_a_racing_mkdir(path, **kw):
        n = real_keep(path, **kw)
        os.mkdir(on_disk(local, path))        # the other worker's mkdir lands now
        return n
    monkeypatch.setattr(local, "keep", keep_then_a_racing_mkdir)
    assert ship(local, src, "p/d/z")[0].error is None
    assert local.read("p/d/z") == b"z inside d"
    assert trash_files(local) == {f"{STAMP}.deleted/p/d"}


@pytest.mark.parametrize("where", ["outside the root", "inside the root"])
def test_an_overwrite_of_a_file_with_an_operators_link_is_kept(local, src, tmp_path, where):
    """A second link to the mirror's file that is not the trash's (an operator's `cp -al`
    or rsnapshot --link-dest snapshot of the mirror) is no sign of an earlier keep: the
    overwrite is kept, and fetched it is the old bytes (a review, helper-155)."""
    write(src, "doc.txt", b"doc original")
    assert ship(local, src, "doc.txt", when=WHEN - 60)[0].error is None
    snap = (tmp_path / "snap") if where == "outside the root" else Path(local.root) / "snap"
    snap.mkdir()
    os.link(Path(local.root) / "doc.txt", snap / "doc.txt")
    write(src, "doc.txt", b"overwritten by mistake", ns=NS + 10**9)
    assert ship(local, src, "doc.txt", when=WHEN)[0].error is None
    [k] = [k for k in local.trash_list() if k.path == "doc.txt"]
    out = tmp_path / "out"
    local.trash_fetch(k, str(out))
    assert (k.why, out.read_bytes()) == (OVERWRITTEN, b"doc original")


def test_a_rewrite_in_place_with_size_and_mtime_kept_is_kept(local, src, tmp_path):
    """Other bytes under the same size and mtime (ransomware that keeps lengths and puts
    the mtime back) are no re-send: the put keeps the old bytes first; the same bytes
    sent again afterwards keep nothing more."""
    f = write(src, "f", b"clean-data-01\n")
    assert ship(local, src, "f", when=WHEN - 60)[0].error is None
    write(src, "f", b"ENCRYPTED-01\n\n")          # 14 bytes, mtime NS again
    assert ship(local, src, "f", when=WHEN)[0].error is None
    assert local.read("f") == b"ENCRYPTED-01\n\n"
    assert ship(local, src, "f", when=WHEN + 30)[0].error is None
    [k] = local.trash_list()
    out = tmp_path / "out"
    local.trash_fetch(k, str(out))
    assert (k.why, out.read_bytes(), f.stat().st_mtime_ns) == (OVERWRITTEN, b"clean-data-01\n", NS)
