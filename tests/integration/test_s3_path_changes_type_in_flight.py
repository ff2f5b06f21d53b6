"""A path that changes type (a file made a directory, or back) while a row of it is in
flight, on a real S3 target (SeaweedFS): the row's op still does what it was claimed as,
so the journal keeps it apart from the keys below it by that (mirrord.journal.
key_overlaps), and a mkdir's worker that finds a file waits instead of sending it beside
the puts below (ship_rules.not_yet). SeaweedFS lost one of a pair of PutObject X and
PutObject X/y sent together 13 times in 400. The workers' order is forced by hand (a
Shipper on the caller's thread); the mirror is checked exact at the end.

Found by a review of the S3 claim rule: `rm X; mkdir X; echo > X/y` while X's put was in
flight turned X's row into a mkdir, read as writing nothing, and X/y went out beside
PutObject X.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper, serial
from mirrord.targets.s3 import S3Target
from tests.exactness import differences, source_snapshot, target_snapshot
from tests.fakes import Clock
from tests.integration.test_s3_target import PREFIX, options

S, T = "up", "s3"


@pytest.fixture
def site(tmp_path: Path, seaweedfs):
    """An empty source shipped to a fresh bucket: (src, journal, shipper, target)."""
    src = tmp_path / "src"
    src.mkdir()
    target = S3Target(T, options(seaweedfs, seaweedfs.new_bucket()), workers=2)
    target.open()
    j = Journal(tmp_path / "journal.db", {S: (T,)}, clock=Clock(1_800_000_000.0))
    shipper = Shipper({T: target}, [SourceConfig(S, src, (T,), dest=PREFIX.strip("/"))],
                      {T: 2}, executor=serial)
    try:
        yield src, j, shipper, target
    finally:
        j.close()
        target.close()


def _claim(j: Journal) -> list:
    return j.claim(T, 100, now=2e9, directories=False)


def _drain(j: Journal, shipper: Shipper, target: S3Target) -> None:
    for _ in range(20):
        ops = _claim(j)
        if not ops:
            break
        j.ack(shipper.run_ops(target, ops))
    assert _claim(j) == []


def _exact(src: Path, target: S3Target) -> dict:
    return differences(source_snapshot(src, directories=False), target_snapshot(target, PREFIX))


def test_a_mkdir_whose_directory_became_a_file_waits(site):
    """X (a new directory) and X/y claimed together, then `rm -r X; echo > X`: X's mkdir
    finds a file. Sent, it was PutObject X beside X/y's put; it waits, and runs again as
    the put its row is now, once nothing below X is in flight."""
    src, j, shipper, target = site
    (src / "X").mkdir()
    (src / "X" / "y").write_bytes(b"y below X")
    j.enqueue([Change(S, "X", "mkdir"), Change(S, "X/y", "put")])
    mkdir, below = sorted(_claim(j), key=lambda op: op.path)
    assert (mkdir.path, mkdir.kind, below.path) == ("X", "mkdir", "X/y")
    shutil.rmtree(src / "X")
    (src / "X").write_bytes(b"X is a file now")
    (out,) = shipper.run_ops(target, [mkdir])
    assert out.busy and out.error and "is a file at the source" in out.error
    assert target.stat(PREFIX + "X") is None            # nothing sent beside X/y
    j.ack([out])
    j.enqueue([Change(S, "X", "put"), Change(S, "X/y", "delete")])
    assert [op.path for op in _claim(j)] == []          # X waits for X/y in flight
    j.ack(shipper.run_ops(target, [below]))
    _drain(j, shipper, target)
    assert _exact(src, target) == {}


def test_a_put_whose_file_became_a_directory_keeps_the_keys_below_apart(site):
    """X's put in flight, then `rm X; mkdir X; echo > X/y`: the row is a mkdir now, and the
    put's worker still runs: X/y waits for it."""
    src, j, shipper, target = site
    (src / "X").write_bytes(b"X, a file")
    j.enqueue([Change(S, "X", "put")])
    (put,) = _claim(j)
    (src / "X").unlink()
    (src / "X").mkdir()
    (src / "X" / "y").write_bytes(b"y below X")
    j.enqueue([Change(S, "X", "mkdir"), Change(S, "X/y", "put")])
    assert _claim(j) == []
    j.ack(shipper.run_ops(target, [put]))
    _drain(j, shipper, target)
    assert _exact(src, target) == {}


def test_a_mkdir_that_finds_a_file_is_made_its_put_with_no_change_read(site):
    """No change reaches X's row (a subtree check's stale mkdir, an event never read): the
    mkdir's worker that finds the file sends nothing and makes its row the file's put,
    which the claim keeps apart from the keys below X; the mirror ends exact. (Sent by a
    retry of the mkdir, as before, it counted as writing there and waited, after an
    outage, while the files arriving below X kept going first.)"""
    src, j, shipper, target = site
    (src / "X").mkdir()
    j.enqueue([Change(S, "X", "mkdir")])
    (mkdir,) = _claim(j)
    (src / "X").rmdir()
    (src / "X").write_bytes(b"X is a file now")
    (out,) = shipper.run_ops(target, [mkdir])
    assert out.busy and out.now_file and "is a file at the source" in out.error
    assert target.stat(PREFIX + "X") is None
    j.ack([out])
    assert j.db.execute("SELECT kind, is_dir FROM ops WHERE path = ?", (b"X",)).fetchone() == (
        "put", 0)
    (src / "Z").mkdir()
    (src / "Z" / "a").write_bytes(b"a")
    j.enqueue([Change(S, "X/y", "delete"), Change(S, "Z", "mkdir"), Change(S, "Z/a", "put")])
    first = _claim(j)
    paths = {op.path for op in first}
    assert not {"X", "X/y"} <= paths, paths             # never in flight together
    assert {"Z", "Z/a"} <= paths
    j.ack(shipper.run_ops(target, first))
    _drain(j, shipper, target)
    assert _exact(src, target) == {}
