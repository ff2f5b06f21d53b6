"""A comparison's first copy of a file and the live write of that same version: the
mass-change alarm counts no overwrite (mirrord.journal.first_copies). Real journal, real
source files, the real reconcile engine and catch-up, the real shipper on LocalTargets.

Found by a CI run of tests/e2e/test_alarm_counted_once.py (21 for 20): files restored into
the source while the start's reconcile pass listed it; the pass proposed the files its
target lacked, their puts went out, and each live event, read just after, counted an
overwrite of the copy in flight. Each shape has its control: a version the target held
before the comparison, a change since the look, another target holding an older copy, a
proposal over a put in flight, and no look at the source (the code before) all count.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.alarm_batch import count_batch
from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.daemon_alarm_resend import Resends
from mirrord.journal import Change, Journal
from mirrord.reconcile import reconcile_pass
from mirrord.shipper import Shipper, serial
from mirrord.targets.local import LocalTarget
from tests.unit.test_reconcile import make_cfg

S = "up"
LATER = 1e12   # claim "now": past every backoff


class Site:
    """Source `src` routed to LocalTargets t and u, with x/a shipped to both."""

    def __init__(self, tmp: Path):
        self.root = tmp / "src"
        (self.root / "x").mkdir(parents=True)
        self.source = SourceConfig(S, self.root, ("t", "u"))
        self.cfg = make_cfg(tmp, [self.source])
        self.journal = Journal(tmp / "journal.db", {S: ("t", "u")})
        self.targets = {n: LocalTarget(n, tmp / f"mirror-{n}", fsync=False) for n in ("t", "u")}
        for target in self.targets.values():
            target.open()
        self.shipper = Shipper(self.targets, [self.source], {"t": 1, "u": 1}, executor=serial)
        self.resends = Resends(lambda s, p: 0, lambda s, p: False, lambda: 0.0)
        self.write("x/a", b"a v1")
        self.journal.enqueue([Change(S, "x", "mkdir"), Change(S, "x/a", "put")])
        self.drain()

    def write(self, rel: str, data: bytes) -> None:
        (self.root / rel).write_bytes(data)

    def claim(self, target: str) -> list:
        return self.journal.claim(target, 1000, now=LATER)

    def ship(self, target: str, ops: list) -> None:
        self.journal.ack(self.shipper.run_ops(self.targets[target], ops))

    def drain(self) -> None:
        for name in self.targets:
            while ops := self.claim(name):
                self.ship(name, ops)

    def reconcile(self, target: str) -> None:
        """A reconcile pass of `target`, its repairs recorded (as the daemon records them)."""
        proposed: list[Change] = []
        res = reconcile_pass(self.cfg, self.targets[target], self.source, emit=proposed.extend,
                             emit_deletes=proposed.extend, delete=False)
        assert not res.errors, res.errors
        self.journal.enqueue(proposed)

    def catch_up(self, targets=("t", "u")) -> None:
        calls: list[list[Change]] = []
        catch_up(self.journal.path, self.source, list(targets), calls.append)
        for batch in calls:
            self.journal.enqueue(batch)

    def counted(self, path: str, *, look: bool = True) -> int:
        """What the live write of `path` adds to the alarm (the source looked at, or not:
        the code before)."""
        return count_batch(self.journal, self.resends, S, [Change(S, path, "put")],
                           root=str(self.root) if look else None)

    def close(self) -> None:
        self.shipper.shutdown()
        self.journal.close()
        for target in self.targets.values():
            target.close()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.close()


def test_a_reconcile_repair_of_a_file_the_target_lacked_is_the_write_s_own(site):
    """The CI shape: x/new restored into the source; t's reconcile pass sends it before
    its event is read. In flight, then acked: 0. A write since, or the code before: 1."""
    site.write("x/new", b"restored")
    site.reconcile("t")
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/new"]
    assert site.counted("x/new") == 0                 # in flight on t
    assert site.counted("x/new", look=False) == 1     # the code before
    site.ship("t", ops)
    assert (Path(site.targets["t"].root) / "x" / "new").read_bytes() == b"restored"
    assert site.counted("x/new") == 0                 # shipped on t: still its own copy
    site.write("x/new", b"encrypted")                 # a write after the look replaces it
    assert site.counted("x/new") == 1


def test_a_reconcile_repair_of_a_changed_file_replaces_the_older_copy(site):
    """x/a changed at the source, its event late: t's pass sends the new version over the
    one t held. That older version is replaced: 1, in flight and acked."""
    site.write("x/a", b"a v2, longer")
    site.reconcile("t")
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/a"]
    assert site.counted("x/a") == 1
    site.ship("t", ops)
    assert site.counted("x/a") == 1


def test_another_target_holding_an_older_copy_still_counts(site):
    """t lost x/a by hand and its pass sends the source's x/a, rewritten meanwhile; u still
    holds the older version the write replaces: 1."""
    os.unlink(Path(site.targets["t"].root) / "x" / "a")
    site.write("x/a", b"a v2 rewritten")
    site.reconcile("t")
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/a"]
    assert site.counted("x/a") == 1


def test_a_catch_up_s_first_copy_is_the_write_s_own(site):
    """The start's catch-up finds x/new (written while the daemon was starting) and sends
    it to both targets before its event is read: 0, in flight and acked; 1 after a write."""
    site.write("x/new", b"uploaded at start")
    site.catch_up()
    in_flight = {name: site.claim(name) for name in ("t", "u")}
    assert all([op.path for op in ops] == ["x/new"] for ops in in_flight.values())
    assert site.counted("x/new") == 0
    assert site.counted("x/new", look=False) == 1
    for name, ops in in_flight.items():
        site.ship(name, ops)
    assert site.counted("x/new") == 0
    site.write("x/new", b"rewritten")
    assert site.counted("x/new") == 1


def test_a_first_copy_on_one_target_only_leaves_the_other_s_copy_counted(site):
    """x/new sent to t by t's pass; u's put of the same file, from the live stream's first
    event, is in flight too with no look behind it: that copy counts, as before (1)."""
    site.write("x/new", b"new")
    site.journal.enqueue([Change(S, "x/new", "put", targets=("u",))])
    u_ops = site.claim("u")
    site.reconcile("t")
    site.claim("t")
    assert [op.path for op in u_ops] == ["x/new"]
    assert site.counted("x/new") == 1


def test_a_proposal_over_a_put_in_flight_is_no_first_copy(site):
    """The live stream's put of x/new is at t's worker (it may have read an older version)
    when the catch-up proposes the file again: t's copy in flight counts, as before."""
    site.write("x/new", b"first version")
    site.journal.enqueue([Change(S, "x/new", "put", targets=("t",))])
    assert [op.path for op in site.claim("t")] == ["x/new"]
    site.write("x/new", b"second version")
    site.catch_up(("t",))
    assert site.counted("x/new") == 1



def _older_version_in_flight_on_t(site) -> list:
    """x/p's older version put onto t by the live stream, its ack not recorded yet, then x/p
    rewritten (its event not read): the outcomes to ack."""
    site.write("x/p", b"v0 original")
    site.journal.enqueue([Change(S, "x/p", "put", targets=("t",))])
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/p"]
    outcomes = site.shipper.run_ops(site.targets["t"], ops)
    assert (Path(site.targets["t"].root) / "x" / "p").read_bytes() == b"v0 original"
    site.write("x/p", b"ENCRYPTED, longer")
    return outcomes


def test_an_ack_recorded_between_the_catch_up_s_look_and_its_record_counts(site):
    """(a review) The catch-up reads `shipped` before the older version's ack is recorded,
    and its proposal is recorded after: t holds that version then, and the write of the
    version looked at replaces it: 1."""
    outcomes = _older_version_in_flight_on_t(site)
    calls: list[list[Change]] = []
    catch_up(site.journal.path, site.source, ["t"], calls.append)
    assert [(c.path, c.first_copy) for b in calls for c in b] == [("x/p", True)]
    site.journal.ack(outcomes)
    for batch in calls:
        site.journal.enqueue(batch)
    assert site.counted("x/p") == 1


def test_a_target_listed_before_the_older_version_landed_counts(site):
    """(a review) t's listing is read before the older version lands, the pass proposes a
    first copy, and the ack is recorded before the proposal: t holds that version: 1."""
    outcomes = _older_version_in_flight_on_t(site)
    held = Path(site.targets["t"].root) / "x" / "p"
    os.rename(held, held.with_name("p.aside"))        # as the listing saw t: without x/p
    try:
        proposed: list[Change] = []
        reconcile_pass(site.cfg, site.targets["t"], site.source, emit=proposed.extend,
                       emit_deletes=lambda changes: None, delete=False)
    finally:
        os.rename(held.with_name("p.aside"), held)
    assert [(c.path, c.first_copy) for c in proposed] == [("x/p", True)]
    site.journal.ack(outcomes)
    site.journal.enqueue(proposed)
    assert site.counted("x/p") == 1
