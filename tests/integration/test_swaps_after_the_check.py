"""What an exchange kept is dropped only after the worker's check that the file it sent did
not change while it was sent (ship_rules.unchanged), on every target type (memory, local,
rsync over sshd, S3 in 'copy' mode, a versioned bucket).

Found by a review (helper-138): the drop (mirrord.trash.swaps.settle) ran inside the
send, before that check. An S3 put hashes the file (the sha256 its checksum() answers
with) in a pass before the one that sends the body; a file written in place between the
two leaves other bytes under that digest, and the drop trusted it: the only kept copy of
the old bytes could be purged. A put whose file changed while it was sent is a wait now,
and nothing is dropped for it until it is sent again unchanged."""

from __future__ import annotations

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


def test_a_put_that_changed_while_sent_drops_nothing(site, monkeypatch):
    src, j, shipper, target, cfg, source = site
    exchange_names(src, "a", "c")
    j.enqueue_move(S, "a", "c", is_dir=False)                 # fanotify's shape
    j.enqueue([Change(S, "a", "put"), Change(S, "c", "put")])
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
    monkeypatch.setattr(swaps, "redundant", lambda t, item: asked.append(item) or
                        real_redundant(t, item))
    for _ in range(5):
        drain(j, shipper, target)
        if not j.db.execute("SELECT COUNT(*) FROM ops").fetchone()[0]:
            break
        j.clock.now += 3600
    assert torn, "the exchange's put of a never carried c"
    assert not any(item is torn[0] for item in asked), "dropped after a torn send"
    assert exact(src, target) == {}
    # c's old bytes were kept by the exchange; a holds them no more (written since)
    assert ("c", 720) in kept(target) or ("a", 720) in kept(target), kept(target)
