"""Two directories swapped through a temp name keep nothing with keep_deleted on, and a file
changed before its re-send keeps exactly what was destroyed; on the real Journal and
Shipper, on every target type (memory, local, rsync over sshd, S3 in 'copy' mode, a
versioned bucket).

Found by a breaker: `mv d1 x; mv d2 d1; mv x d2` (20 files each) left the mirror exact
and `mirrord trash` listing all 40 files as 'directory removed'; a burst of such renames
kept 1,540 versions and fired the mass-change alarm. The last two renames find work
pending and fall back to a tree removal of the old name and a re-send of the new one
(journal enqueue_move), and each removal kept bytes the re-send puts back at the other
name. The removal carries its new name now (the row's src) and mirrord.trash.moved_trees
drops what it kept once the target holds that very version there. The re-send is what
the daemon's subtree scan queues (daemon_scans.subtree): a mkdir and a put per entry.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper, serial
from mirrord.trash.keeper import KeepPolicy
from tests.exactness import differences, source_snapshot, target_snapshot
from tests.fakes import Clock
from tests.targets.conftest import make_target
from tests.targets.test_s3_trash import s3_on

S = "up"
N = 5


@pytest.fixture(params=["memory", "local", "rsync", "s3", "versioned"])
def target(request, tmp_path):
    if request.param == "versioned":
        seaweedfs = request.getfixturevalue("seaweedfs")
        bucket = seaweedfs.new_bucket()
        seaweedfs.client().put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        t = s3_on(seaweedfs, bucket)
    else:
        t = make_target(request.param, request, tmp_path)
    t.open()
    yield t
    t.close()


@pytest.fixture
def site(tmp_path: Path, target):
    """d1/f0..f4 and d2/f0..f4 (other bytes, other mtimes) shipped to `target` with
    keep_deleted on: (src, journal, shipper, target). The journal's clock is a whole
    second behind the wall clock: a versioned bucket stamps by the server's time."""
    src = tmp_path / "src"
    for d in ("d1", "d2"):
        (src / d).mkdir(parents=True)
        for i in range(N):
            p = src / d / f"f{i}"
            p.write_bytes(f"{d} file {i}\n".encode() * (i + 1))
            ns = 1_700_000_000_123_456_789 + (i + (0 if d == "d1" else 100)) * 10**9
            os.utime(p, ns=(ns, ns))
    j = Journal(tmp_path / "journal.db", {S: (target.name,)}, clock=Clock(int(time.time()) - 1))
    shipper = Shipper({target.name: target}, [SourceConfig(S, src, (target.name,))],
                      {target.name: 2}, executor=serial,
                      keep={target.name: KeepPolicy(86400.0)})
    j.enqueue([Change(S, d, "mkdir") for d in ("d1", "d2")])
    j.enqueue([Change(S, f"{d}/f{i}", "put") for d in ("d1", "d2") for i in range(N)])
    drain(j, shipper, target)
    try:
        yield src, j, shipper, target
    finally:
        j.close()


def drain(j: Journal, shipper: Shipper, target, ops=None) -> None:
    for _ in range(30):
        ops = ops or j.claim(target.name, 100)
        if not ops:
            break
        j.ack(shipper.run_ops(target, ops))
        ops = None
    assert j.claim(target.name, 100) == []


def rename(src: Path, j: Journal, a: str, b: str) -> list[str]:
    """`mv a b` and what the daemon records for it, a re-send included when it falls back."""
    os.rename(src / a, src / b)
    fallback = j.enqueue_move(S, a, b, is_dir=True)
    if fallback:
        j.enqueue([Change(S, b, "mkdir")])
        j.enqueue([Change(S, f"{b}/{p.name}", "put") for p in sorted((src / b).iterdir())])
    return fallback


def exact(src: Path, target) -> dict:
    dirs = target.features.directories
    slack = int(max(target.features.mtime_precision, 0) * 1e9)
    return differences(source_snapshot(src, directories=dirs), target_snapshot(target),
                       mtime_slack_ns=slack)


def kept(target) -> list[tuple[str, int]]:
    return sorted((k.path, k.size) for k in target.trash_list())


def rotate(src: Path, j: Journal, shipper: Shipper, target, move_in_flight: bool) -> None:
    """d1 -> x -> d2 and d2 -> d1; with `move_in_flight` the first rename's move is claimed
    before the other two are read and shipped after (the daemon's usual order). Renamed
    a second behind the wall clock: a versioned bucket stamps by the server's time."""
    j.clock.now = int(time.time()) - 1
    assert rename(src, j, "d1", "x") == []   # nothing pending: a move
    claimed = j.claim(target.name, 100) if move_in_flight else None
    assert rename(src, j, "d2", "d1") == [target.name]
    assert rename(src, j, "x", "d2") == [target.name]
    return claimed


@pytest.mark.parametrize("move_in_flight", [False, True], ids=["read-together", "move-in-flight"])
def test_two_directories_swapped_through_a_temp_name_keep_nothing(site, move_in_flight):
    src, j, shipper, target = site
    claimed = rotate(src, j, shipper, target, move_in_flight)
    drain(j, shipper, target, claimed)
    assert exact(src, target) == {}
    assert kept(target) == [], "a rotation of directories kept what lives on at the other name"


@pytest.mark.parametrize("move_in_flight", [False, True], ids=["read-together", "move-in-flight"])
def test_a_file_changed_before_its_resend_keeps_exactly_its_old_bytes(site, move_in_flight):
    src, j, shipper, target = site
    claimed = rotate(src, j, shipper, target, move_in_flight)
    old = (src / "d2" / "f3").read_bytes()             # d1/f3's bytes, re-sent to d2/f3
    (src / "d2" / "f3").write_bytes(b"other bytes before the re-send landed")
    j.enqueue([Change(S, "d2/f3", "put")])
    os.unlink(src / "d1" / "f1")                        # d2/f1's bytes, never re-sent
    j.enqueue([Change(S, "d1/f1", "delete")])
    drain(j, shipper, target, claimed)
    assert exact(src, target) == {}
    sizes = sorted(size for _path, size in kept(target))
    assert sizes == sorted([len(old), len(b"d2 file 1\n" * 2)]), kept(target)


@pytest.mark.parametrize("move_in_flight", [False, True], ids=["read-together", "move-in-flight"])
def test_other_bytes_of_the_same_size_and_mtime_keep_the_old_ones(site, move_in_flight,
                                                                  tmp_path):
    """A file rewritten before its re-send landed, with its size and mtime put back
    (`touch -r`; a tree extracted from an archive gives many files one mtime): the new
    name then holds a version that matches the kept one by size and mtime only. The
    bytes decide: the old ones stay kept (a breaker's rotation dropped such a version,
    and its bytes were nowhere any more)."""
    src, j, shipper, target = site
    claimed = rotate(src, j, shipper, target, move_in_flight)
    path = src / "d2" / "f3"
    old, st = path.read_bytes(), path.stat()
    path.write_bytes(bytes(b ^ 0x20 for b in old))     # same size, other bytes
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    j.enqueue([Change(S, "d2/f3", "put")])
    drain(j, shipper, target, claimed)
    assert exact(src, target) == {}
    contents = []
    for k in target.trash_list():
        local = tmp_path / "fetched"
        target.trash_fetch(k, str(local))
        contents.append(local.read_bytes())
    assert old in contents, "the only copy of the old bytes was dropped from the trash"


@pytest.mark.parametrize("proposed", [["mkdir"], ["mkdir", "puts"], ["puts", "mkdir"]])
def test_a_directory_move_turned_into_a_mkdir_before_it_ran_keeps_nothing(site, proposed):
    """`mv d1 n` queued as a move, then a change at the new name turns its row into a mkdir
    before it is claimed: a comparison (the daemon's reconcile pass at start, a catch-up)
    that walked the source after the rename and the target before the move reached it
    proposes n and what lies below it. The move's source end, a tree removal of d1, then
    found d1 whole on the target and kept all of it as 'directory removed' though the
    re-send puts those bytes at n (`mirrord trash` listed a rename; CI, 1 run in many, on
    the local target of tests/e2e/test_versioned_moves_keep_nothing.py). The removal
    carries the new name once its move is gone (mirrord.trash.moved_trees)."""
    src, j, shipper, target = site
    j.clock.now = int(time.time()) - 1
    os.rename(src / "d1", src / "n")
    assert j.enqueue_move(S, "d1", "n", is_dir=True) == []
    for what in proposed:
        if what == "mkdir":
            j.enqueue([Change(S, "n", "mkdir")])
        else:
            j.enqueue([Change(S, f"n/{p.name}", "put") for p in sorted((src / "n").iterdir())])
    drain(j, shipper, target)
    assert exact(src, target) == {}
    left = kept(target)
    if target.name == "memory":
        # the fake has no cheap stat (Features.cheap_stat) and no conditional put, so the
        # proposed puts of the very bytes the move carried keep them as 'overwritten'
        # (keeper._holds_already); the real targets keep nothing
        left = [(path, size) for path, size in left if not path.startswith("n/")]
    assert left == [], "a rename whose move became a mkdir kept what lives on at n"


def test_a_directory_moved_then_removed_at_its_new_name_stays_kept(site):
    """The kind's other side: `mv d1 n; rm -r n` before the move ran. d1's bytes are gone
    everywhere, and every file of d1 stays kept (once, under its old name)."""
    src, j, shipper, target = site
    j.clock.now = int(time.time()) - 1
    os.rename(src / "d1", src / "n")
    assert j.enqueue_move(S, "d1", "n", is_dir=True) == []
    for p in sorted((src / "n").iterdir()):
        p.unlink()
    (src / "n").rmdir()
    j.enqueue([Change(S, "n", "delete", tree=True)])
    drain(j, shipper, target)
    assert exact(src, target) == {}
    assert sorted(path for path, _size in kept(target)) == [f"d1/f{i}" for i in range(N)]
