"""What an exchange kept is dropped only after the worker's check that the file it sent did
not change while it was sent (ship_rules.unchanged), on every target type (memory, local,
rsync over sshd, S3 in 'copy' mode, a versioned bucket).

Found by a review (helper-138): the drop (mirrord.trash.swaps.settle) ran inside the
send, before that check. An S3 put hashes the file (the sha256 its checksum() answers
with) in a pass before the one that sends the body; a file written in place between the
two leaves other bytes under that digest, and the drop trusted it: the only kept copy of
the old bytes could be purged. A put whose file changed while it was sent is a wait now,
and its name is trusted as a holder of nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from mirrord.journal import Change
from mirrord.trash import swaps
from tests.integration.test_dir_rotation_keeps_nothing import (  # noqa: F401 (target)
    drain, exact, kept, target)
from tests.integration.test_rename_then_proposals_keep_nothing import shipped_site
from tests.unit.test_exchange_properties import exchange_names

S = "up"


@pytest.fixture
def site(tmp_path: Path, target):  # noqa: F811 - the fixture imported above
    files = {"a": b"a's bytes\n" * 30, "c": b"c's bytes, longer\n" * 40}
    yield from shipped_site(tmp_path, target, files)


@pytest.mark.parametrize("watcher", ["fanotify", "inotify"])
@pytest.mark.parametrize("move_in_flight", [False, True], ids=["read-together", "move-in-flight"])
def test_a_put_that_changed_while_sent_trusts_nothing_it_sent(site, monkeypatch, watcher,
                                                              move_in_flight):
    """`mv --exchange a c`, a written in place while its put is sent: the put's name is no
    holder (the versions kept at c that a seems to hold stay), and what it kept at a that
    c holds goes (its retry names no other name: kept for good before)."""
    src, j, shipper, target, cfg, source = site
    exchange_names(src, "a", "c")
    j.enqueue_move(S, "a", "c", is_dir=False)
    claimed = j.claim(target.name, 100) if move_in_flight else None
    if watcher == "fanotify":
        j.enqueue([Change(S, "a", "put"), Change(S, "c", "put")])
    else:
        j.enqueue_move(S, "c", "a", is_dir=False)
    torn: list = []
    real_sync = target.sync

    def sync_then_write(items):
        results = real_sync(items)
        for item in items:
            if item.source_rel == "a" and item.moved_to and not torn:
                torn.append(item)                              # written while it was sent
                with open(src / "a", "ab") as f:
                    f.write(b"written in place while it was sent\n")
        return results

    asked: list = []
    real_redundant = swaps.redundant
    monkeypatch.setattr(target, "sync", sync_then_write)
    monkeypatch.setattr(swaps, "redundant", lambda t, item, **kw: asked.append((item, kw)) or
                        real_redundant(t, item, **kw))
    if move_in_flight:
        j.ack(shipper.run_ops(target, claimed))
    for _ in range(5):
        drain(j, shipper, target)
        if not j.db.execute("SELECT COUNT(*) FROM ops").fetchone()[0]:
            break
        j.clock.now += 3600
    assert torn, "the exchange's put of a never carried c"
    assert [kw for item, kw in asked if item is torn[0]] == [{"sent_whole": False}], (
        "the torn put's name was trusted as a holder")
    assert exact(src, target) == {}
    # c's old bytes, which a held until it was written, live nowhere now: kept (at c, and
    # as a's version before the write); nothing is kept that the target holds
    assert duplicates(target) == [], kept(target)
    assert {size for _path, size in kept(target)} == {720}, kept(target)


def duplicates(target) -> list[tuple[str, int]]:
    """The kept versions whose very bytes the target holds at some name."""
    live = {target.read(e.path) for e in target.list() if not e.is_dir}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, k in enumerate(target.trash_list()):
            target.trash_fetch(k, f"{tmp}/{n}")
            if Path(f"{tmp}/{n}").read_bytes() in live:
                out.append((k.path, k.size))
    return out
