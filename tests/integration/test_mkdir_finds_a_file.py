"""A directory's mkdir whose path became a file before its worker looked sends nothing and
its row is made that file's put (ship_rules.not_yet, errors.BecameAFile), on every target
type (local, rsync over sshd, S3 on SeaweedFS; the memory fake too), so a mkdir in flight
never writes a file: what claim_owners.CUT_SHORT counts on after a crash, and what the
S3 claim rule (journal.key_overlaps) counts on to let a mkdir go beside the keys below it.

Shapes: the change was read (the row is the put already, and runs again as it); no change
comes (a subtree check's stale mkdir over the file's put: before, the worker's first try
waited for a change that never came, and a property test did not drain); the file is
renamed away before the put runs (the put finds nothing: a delete); a crash cut the mkdir
short (release_claims leaves it not landed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper, serial
from tests.fakes import Clock
from tests.integration.test_dir_rotation_keeps_nothing import exact as _exact
from tests.targets.conftest import make_target

S = "up"


@pytest.fixture(params=["memory", "local", "rsync", "s3"])
def site(request, tmp_path: Path):
    """An empty source and a fresh target of each type: (src, journal, shipper, target)."""
    target = make_target(request.param, request, tmp_path)
    target.open()
    src = tmp_path / "src"
    src.mkdir()
    j = Journal(tmp_path / "journal.db", {S: (target.name,)}, clock=Clock(1_800_000_000.0))
    shipper = Shipper({target.name: target}, [SourceConfig(S, src, (target.name,))],
                      {target.name: 2}, executor=serial)
    try:
        yield src, j, shipper, target
    finally:
        j.close()
        target.close()


def _claim(j: Journal, target) -> list:
    return j.claim(target.name, 100, now=2e9, directories=target.features.directories)


def _drain(j: Journal, shipper: Shipper, target) -> None:
    for _ in range(20):
        ops = _claim(j, target)
        if not ops:
            break
        j.ack(shipper.run_ops(target, ops))
    assert _claim(j, target) == []


def _mkdir_then_file(src: Path, j: Journal, target):
    """X queued and claimed as a new directory's mkdir, then made a file at the source."""
    (src / "X").mkdir()
    j.enqueue([Change(S, "X", "mkdir")])
    (mkdir,) = _claim(j, target)
    (src / "X").rmdir()
    (src / "X").write_bytes(b"X is a file now")
    return mkdir


def _row(j: Journal) -> tuple | None:
    return j.db.execute("SELECT kind, is_dir, landed FROM ops WHERE path = ?",
                        (b"X",)).fetchone()


@pytest.mark.parametrize("read", [False, True], ids=["no-change", "change-read"])
def test_a_mkdir_that_finds_a_file_sends_nothing_and_its_row_sends_the_file(site, read):
    src, j, shipper, target = site
    mkdir = _mkdir_then_file(src, j, target)
    if read:
        j.enqueue([Change(S, "X", "put")])
    (out,) = shipper.run_ops(target, [mkdir])
    assert out.busy and out.now_file, out
    assert target.stat("X") is None                     # nothing sent by the mkdir
    j.ack([out])
    assert _row(j) == ("put", 0, 0)
    _drain(j, shipper, target)
    assert _exact(src, target) == {}


def test_the_file_renamed_away_before_the_put_runs_leaves_nothing(site):
    src, j, shipper, target = site
    mkdir = _mkdir_then_file(src, j, target)
    j.ack(shipper.run_ops(target, [mkdir]))
    (src / "X").rename(src / "Y")
    j.enqueue_move(S, "X", "Y", is_dir=False)
    _drain(j, shipper, target)
    assert _exact(src, target) == {}


def test_a_mkdir_cut_short_by_a_crash_is_not_landed(site):
    src, j, shipper, target = site
    _mkdir_then_file(src, j, target)
    j.db.execute("UPDATE ops SET claimer = 'gone' WHERE claimed != 0")
    assert j.release_claims(claimers=["gone"]) == 1
    assert _row(j) == ("mkdir", 1, 0)
    _drain(j, shipper, target)
    assert _exact(src, target) == {}
