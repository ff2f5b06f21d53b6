"""A target's first copy of a file and the live write of that same version: the
mass-change alarm counts no overwrite (mirrord.journal.first_copies). Real journal, real
source files, the real reconcile engine and catch-up, the real shipper (its workers' looks
followed as the daemon's are) on LocalTargets.

Found by a CI run of tests/e2e/test_alarm_counted_once.py (21 for 20): files restored into
the source while the start's reconcile pass listed it; the pass proposed the files its
target lacked, their puts went out, and each live event, read just after, counted an
overwrite of the copy in flight. And by hand: a slow writer's new files, whose first put
waited (the file open for writing) and ran again at the close, counted 56 of 250. Each
shape is asked in every state of the put (handed out, read, acked) with its controls: a
version the target held before, an older version landing, a change since the worker's
look, another target holding an older copy, a put another process has in flight, a read
under way, and no look at the source (the code before) all count.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.alarm_batch import count_batch
from mirrord.alarm_replaced import Replaced
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
        self.shipper = Shipper(self.targets, [self.source], {"t": 1, "u": 1}, executor=serial,
                               looks=self.journal.first_copies)
        self.resends = Resends(lambda s, p: 0, lambda s, p: False, lambda: 0.0)
        self.write("x/a", b"a v1")
        self.journal.enqueue([Change(S, "x", "mkdir"), Change(S, "x/a", "put")])
        self.drain()

    def write(self, rel: str, data: bytes) -> None:
        (self.root / rel).write_bytes(data)

    def claim(self, target: str, *, handed: bool = True) -> list:
        """Claim what `target` may take; handed to a worker (`handed`, as Shipper.submit
        does before any worker runs) or, False, claimed by another process."""
        ops = self.journal.claim(target, 1000, now=LATER)
        if handed:
            self.journal.first_copies.sending(ops)
        return ops

    def read(self, target: str, ops: list) -> list:
        """The worker's part: the files read and stored on `target`; the outcomes, not acked."""
        return self.shipper.run_ops(self.targets[target], ops)

    def ship(self, target: str, ops: list) -> None:
        self.journal.ack(self.read(target, ops))

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

    def counted(self, path: str, *, look: bool = True, replaced: Replaced | None = None) -> int:
        """What the live write of `path` adds to the alarm (the source looked at, or not:
        the code before; the overwrites counted before remembered in `replaced`, as the
        daemon does, or not)."""
        return count_batch(self.journal, self.resends, S, [Change(S, path, "put")],
                           root=str(self.root) if look else None, replaced=replaced)

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
    its event is read. Handed out, read, acked: 0. A write since, or the code before: 1."""
    site.write("x/new", b"restored")
    site.reconcile("t")
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/new"]
    assert site.counted("x/new") == 0                 # handed out, not read yet
    assert site.counted("x/new", look=False) == 1     # the code before
    outcomes = site.read("t", ops)
    assert (Path(site.targets["t"].root) / "x" / "new").read_bytes() == b"restored"
    assert site.counted("x/new") == 0                 # read and stored, not acked
    site.journal.ack(outcomes)
    assert site.counted("x/new") == 0                 # shipped on t: its first copy
    site.write("x/new", b"encrypted")                 # a write after the look replaces it
    assert site.counted("x/new") == 1


def test_a_reconcile_repair_of_a_changed_file_replaces_the_older_copy(site):
    """x/a changed at the source, its event late: t's pass sends the new version over the
    one t held. That older version is replaced: 1, in every state of the put."""
    site.write("x/a", b"a v2, longer")
    site.reconcile("t")
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/a"]
    assert site.counted("x/a") == 1
    outcomes = site.read("t", ops)
    assert site.counted("x/a") == 1
    site.journal.ack(outcomes)
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
    site.ship("t", ops)
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


def test_a_slow_writer_s_new_file_is_its_own_first_copy(site):
    """The live stream's first put of x/slow finds it open for writing (nothing sent,
    retried); retried and read as the writer closed it: the close's write replaces nothing,
    whenever its event is read (0); the code before counted the put in flight (1)."""
    fh = open(site.root / "x" / "slow", "wb")
    try:
        fh.write(b"first half ")
        fh.flush()
        site.journal.enqueue([Change(S, "x/slow", "put", targets=("t",))])
        ops = site.claim("t")
        outcomes = site.read("t", ops)
        assert [out.busy for out in outcomes] == [True]
        assert site.counted("x/slow") == 0            # in flight, nothing sent
        site.journal.ack(outcomes)                     # a wait: queued again
        assert site.counted("x/slow") == 0
        fh.write(b"second half")
    finally:
        fh.close()
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/slow"]
    assert site.counted("x/slow") == 0                # the retry, not read yet
    assert site.counted("x/slow", look=False) == 1    # the code before
    outcomes = site.read("t", ops)
    assert site.counted("x/slow") == 0                # read as the close left it
    site.journal.ack(outcomes)
    assert site.counted("x/slow") == 0                # acked: t's first copy of it
    assert (Path(site.targets["t"].root) / "x" / "slow").read_bytes() == b"first half second half"


def test_an_older_version_landing_is_replaced_by_the_write(site):
    """x/new's put read its first version; the file is rewritten before the ack: the
    version landing (and once acked, shipped) is replaced: 1."""
    site.write("x/new", b"v1")
    site.journal.enqueue([Change(S, "x/new", "put", targets=("t",))])
    ops = site.claim("t")
    outcomes = site.read("t", ops)
    site.write("x/new", b"v2, rewritten")
    assert site.counted("x/new") == 1
    site.journal.ack(outcomes)
    assert site.counted("x/new") == 1


def test_a_put_over_a_version_the_target_held_counts_in_every_state(site):
    """x/a rewritten; its put is handed out, then read: t (and u) still hold the older
    version, shipped, that the write replaces: 1; once acked on t, u's still counts."""
    site.write("x/a", b"a v2")
    site.journal.enqueue([Change(S, "x/a", "put", targets=("t",))])
    ops = site.claim("t")
    assert site.counted("x/a") == 1
    outcomes = site.read("t", ops)
    assert site.counted("x/a") == 1
    site.journal.ack(outcomes)
    assert site.counted("x/a") == 1                   # u's older copy
    site.journal.enqueue([Change(S, "x/a", "put", targets=("u",))])
    site.drain()
    # both hold the source's version now, over the older one each held: no first copy,
    # and the write that made it (its event late) replaced that older one
    assert site.counted("x/a") == 1


def test_a_put_another_process_has_in_flight_counts(site):
    """x/new's put claimed by another process (`mirrord reconcile` while the daemon
    ships): what it sends is not known here: 1, as before."""
    site.write("x/new", b"new")
    site.journal.enqueue([Change(S, "x/new", "put", targets=("t",))])
    ops = site.claim("t", handed=False)
    assert [op.path for op in ops] == ["x/new"]
    assert site.counted("x/new") == 1


def test_a_put_being_read_counts(site):
    """The worker is reading x/new when the write is counted: what it sends is not known
    yet: 1. Its look taken, the version it sends decides (0 here)."""
    site.write("x/new", b"new")
    site.journal.enqueue([Change(S, "x/new", "put", targets=("t",))])
    ops = site.claim("t")
    site.journal.first_copies.looking(ops[0])
    assert site.counted("x/new") == 1
    outcomes = site.read("t", ops)
    assert site.counted("x/new") == 0
    site.journal.ack(outcomes)


def test_a_first_copy_on_one_target_only_leaves_the_other_s_copy_counted(site):
    """x/new sent to t by t's pass; u's put of an older version of it is landing: that
    copy counts (1)."""
    site.write("x/new", b"new")
    site.journal.enqueue([Change(S, "x/new", "put", targets=("u",))])
    u_out = site.read("u", site.claim("u"))
    site.write("x/new", b"NEWER, longer")
    site.reconcile("t")
    site.ship("t", site.claim("t"))
    assert site.counted("x/new") == 1
    site.journal.ack(u_out)
    assert site.counted("x/new") == 1


def _older_version_in_flight_on_t(site) -> list:
    """x/p's older version put onto t by the live stream, its ack not recorded yet, then x/p
    rewritten (its event not read): the outcomes to ack."""
    site.write("x/p", b"v0 original")
    site.journal.enqueue([Change(S, "x/p", "put", targets=("t",))])
    ops = site.claim("t")
    assert [op.path for op in ops] == ["x/p"]
    outcomes = site.read("t", ops)
    assert (Path(site.targets["t"].root) / "x" / "p").read_bytes() == b"v0 original"
    site.write("x/p", b"ENCRYPTED, longer")
    return outcomes


def test_an_ack_recorded_between_the_catch_up_s_look_and_its_record_counts(site):
    """(a review) The catch-up reads `shipped` before the older version's ack is recorded,
    and its proposal is recorded after: t holds that version then, and the write of the
    version looked at replaces it: 1, before and after the proposal's put."""
    outcomes = _older_version_in_flight_on_t(site)
    calls: list[list[Change]] = []
    catch_up(site.journal.path, site.source, ["t"], calls.append)
    assert [c.path for b in calls for c in b] == ["x/p"]
    site.journal.ack(outcomes)
    for batch in calls:
        site.journal.enqueue(batch)
    assert site.counted("x/p") == 1
    ops = site.claim("t")
    assert site.counted("x/p") == 1
    site.ship("t", ops)
    assert site.counted("x/p") == 1                   # v0 was t's first copy, not this


def test_a_target_listed_before_the_older_version_landed_counts(site):
    """(a review) t's listing is read before the older version lands, the pass proposes
    the file as missing, and the ack is recorded before the proposal: t holds that
    version: 1."""
    outcomes = _older_version_in_flight_on_t(site)
    held = Path(site.targets["t"].root) / "x" / "p"
    os.rename(held, held.with_name("p.aside"))        # as the listing saw t: without x/p
    try:
        proposed: list[Change] = []
        reconcile_pass(site.cfg, site.targets["t"], site.source, emit=proposed.extend,
                       emit_deletes=lambda changes: None, delete=False)
    finally:
        os.rename(held.with_name("p.aside"), held)
    assert [c.path for c in proposed] == ["x/p"]
    site.journal.ack(outcomes)
    site.journal.enqueue(proposed)
    assert site.counted("x/p") == 1
    site.ship("t", site.claim("t"))
    assert site.counted("x/p") == 1


def _shipped(site, rel: str) -> None:
    """A change of `rel` recorded and shipped to both targets."""
    site.journal.enqueue([Change(S, rel, "put")])
    site.drain()


def _append(site, rel: str, data: bytes) -> None:
    with open(site.root / rel, "ab") as fh:
        fh.write(data)


def test_a_new_file_appended_chunk_by_chunk_replaces_nothing(site):
    """A script opens, appends and closes x/up chunk by chunk: each chunk's version is
    sent and acked before the next append, which destroys none of its bytes: 0 at every
    step (the rule before: 1 per chunk after the first acked one)."""
    site.write("x/up", b"chunk 0;")
    site.journal.enqueue([Change(S, "x/up", "put", targets=("t", "u"))])
    for n in range(1, 6):
        in_flight = {name: site.claim(name) for name in ("t", "u")}
        outcomes = {name: site.read(name, ops) for name, ops in in_flight.items()}
        if n % 2:   # half the chunks come while the put is landing, half after its ack
            _append(site, "x/up", f"chunk {n};".encode())
            assert site.counted("x/up") == 0, n
            for name, outs in outcomes.items():
                site.journal.ack(outs)
        else:
            for name, outs in outcomes.items():
                site.journal.ack(outs)
            _append(site, "x/up", f"chunk {n};".encode())
            assert site.counted("x/up") == 0, n
        site.journal.enqueue([Change(S, "x/up", "put", targets=("t", "u"))])
    site.drain()
    assert (Path(site.targets["t"].root) / "x" / "up").read_bytes() == (
        b"chunk 0;" + b"".join(f"chunk {n};".encode() for n in range(1, 6)))


def test_a_mirrored_file_appended_to_replaces_nothing_and_rewritten_counts(site):
    """x/log, sent and acked by this process, appended to (a log): 0. Rewritten in place,
    larger (ransomware adding its footer): 1. A version no sample is kept of (after a
    restart: cleared here) counts an append (the safe side)."""
    site.write("x/log", b"line 1\n")
    _shipped(site, "x/log")
    _append(site, "x/log", b"line 2\n")
    assert site.counted("x/log") == 0
    _shipped(site, "x/log")
    site.write("x/log", b"ENCRYPTED ENCRYPTED + footer\n")
    assert site.counted("x/log") == 1
    site.journal.first_copies._acked.clear()    # as after a restart: nothing sampled
    _append(site, "x/a", b" more")
    assert site.counted("x/a") == 1


def test_an_append_s_event_read_after_its_version_was_acked_counts_nothing(site):
    """x/a (acked by this process) appended to; a put already queued at the path sends that
    version and is acked before the append's event is read. The target holds the file as
    it is, made by an append: 0 (1 before: only a first copy was taken as harmless). The
    same late event of a rewrite that grew the file: 1."""
    site.journal.enqueue([Change(S, "x/a", "put")])      # an earlier event's put, queued
    with open(site.root / "x" / "a", "ab") as fh:
        fh.write(b", appended")
    site.drain()                                         # sent and acked: the append's version
    assert site.counted("x/a") == 0                      # its own event, read late
    site.journal.enqueue([Change(S, "x/a", "put")])
    site.write("x/a", b"A V1, appended, and more")       # the head rewritten, longer
    site.drain()
    assert site.counted("x/a") == 1


def test_a_rewrite_acked_before_its_event_then_appended_to_counts(site):
    """x/a held. A put queued from an earlier event sends a truncating rewrite of x/a and is
    acked before the rewrite's event is read; the script appends to it before that too.
    The rewrite destroyed "a v1" on both targets: 1 (0 when an extension of any version
    kept was taken as harmless, found by review). 50 such files: 50. The same without the
    append: 1."""
    names = ["x/a"] + [f"x/f{i}" for i in range(50)]
    for name in names[1:]:
        site.write(name, b"original content of " + name.encode())
    site.journal.enqueue([Change(S, name, "put") for name in names[1:]])
    site.drain()
    site.journal.enqueue([Change(S, name, "put") for name in names])   # earlier events' puts
    for name in names:
        site.write(name, b"REWRITTEN chunk 0;")
    site.drain()
    assert site.counted("x/f0") == 1                                   # no append yet
    for name in names[1:]:
        _append(site, name, b"chunk 1;")
    assert sum(site.counted(name) for name in names[1:]) == 50


def test_appends_to_a_file_shipped_before_the_daemon_followed_it(site):
    """x/log was shipped before this process followed it (nothing kept: a restart). Its
    first append counts 1 (no digest: the safe side), and so does the next, over the
    version that append's put sent (not known to have been made harmlessly: it was
    counted, but without the alarm's notes, replaced=None, nothing says so). From the version after, a digest of a
    harmless version is kept: appends count nothing, a rewrite 1. The README's limit."""
    site.write("x/log", b"line 1\n")
    _shipped(site, "x/log")
    site.journal.first_copies._acked.clear()          # as after a restart
    counts = []
    for n in range(2, 6):
        _append(site, "x/log", f"line {n}\n".encode())
        counts.append(site.counted("x/log"))
        site.journal.enqueue([Change(S, "x/log", "put")])
        site.drain()
    assert counts == [1, 1, 0, 0]
    site.write("x/log", b"LINE 1\n")
    assert site.counted("x/log") == 1


def test_appends_to_a_file_shipped_before_counted_once_with_the_alarm_s_notes(site):
    """As above, with the overwrites counted remembered (mirrord.alarm_replaced), as the
    daemon counts: the first append counts 1 (no digest), and the version its put sent is
    made by that counted write: the appends after it count nothing, on both targets. A
    rewrite then counts 1, and its append nothing more. A file rewritten, its put acked
    before the rewrite's event, counts the rewrite once (50 files: 50), their appends
    after it nothing."""
    replaced = Replaced()
    site.write("x/log", b"line 1\n")
    _shipped(site, "x/log")
    site.journal.first_copies._acked.clear()          # as after a restart
    counts = []
    for n in range(2, 7):
        _append(site, "x/log", f"line {n}\n".encode())
        counts.append(site.counted("x/log", replaced=replaced))
        site.journal.enqueue([Change(S, "x/log", "put")])
        if n == 3:   # the put is read before the append's event: its version is in flight
            outcomes = {name: site.read(name, site.claim(name)) for name in ("t", "u")}
            counts[-1] += site.counted("x/log", replaced=replaced)
            for outs in outcomes.values():
                site.journal.ack(outs)
        site.drain()
    assert counts == [1, 0, 0, 0, 0]
    site.write("x/log", b"LINE 1\n")
    assert site.counted("x/log", replaced=replaced) == 1
    _shipped(site, "x/log")
    _append(site, "x/log", b"line 2\n")
    assert site.counted("x/log", replaced=replaced) == 0
    names = [f"x/f{i}" for i in range(50)]
    for name in names:
        site.write(name, b"original content of " + name.encode())
    site.journal.enqueue([Change(S, name, "put") for name in names])
    site.drain()
    site.journal.enqueue([Change(S, name, "put") for name in names])   # earlier events' puts
    for name in names:
        site.write(name, b"REWRITTEN chunk 0;")
    site.drain()
    assert sum(site.counted(name, replaced=replaced) for name in names) == 50
    for name in names:
        _append(site, name, b"chunk 1;")
    assert sum(site.counted(name, replaced=replaced) for name in names) == 0
    for name in names:
        site.journal.enqueue([Change(S, name, "put")])
    site.drain()
    for name in names:
        _append(site, name, b"chunk 2;")
    assert sum(site.counted(name, replaced=replaced) for name in names) == 0


def test_a_version_another_process_shipped_since_is_not_the_kept_one(site, tmp_path):
    """x/a ("a v1") acked by this process. x/a appended to ("a v1B") and `mirrord
    reconcile` (another process: its own Journal and shipper) ships that to both targets.
    Then "B" is rewritten ("a v1CC"): an overwrite of what the targets hold, 1; the kept
    "a v1" is no longer their `shipped` row (found by review: 0)."""
    _append(site, "x/a", b"B")
    other = Journal(tmp_path / "journal.db", {S: ("t", "u")})
    other_shipper = Shipper(site.targets, [site.source], {"t": 1, "u": 1}, executor=serial)
    try:
        other.enqueue([Change(S, "x/a", "put")])
        for name in ("t", "u"):
            while ops := other.claim(name, 1000, now=LATER):
                other.ack(other_shipper.run_ops(site.targets[name], ops))
    finally:
        other_shipper.shutdown()
        other.close()
    assert (Path(site.targets["t"].root) / "x" / "a").read_bytes() == b"a v1B"
    site.write("x/a", b"a v1CC")
    assert site.counted("x/a") == 1


def test_an_append_to_a_rewrite_landing_counts_the_version_held_before(site):
    """x/a held ("a v1", a first copy on both targets). A truncating rewrite, its put
    handed out and read on t (landing, look of the rewrite), then an append, in one batch
    of events: the append only extends the version landing, but the rewrite destroyed the
    version both targets hold: 1, in every state of t's put. The extension of a version
    landing excuses that version only, never a `shipped` row below it (the open question
    of a review of 99e785e). A version landing of a new file, appended to: 0; its head
    rewritten: 1."""
    site.write("x/a", b"REWRITTEN")
    site.journal.enqueue([Change(S, "x/a", "put")])
    ops = site.claim("t")
    assert site.counted("x/a") == 1                              # handed out, not read
    outcomes = site.read("t", ops)
    _append(site, "x/a", b" and appended")
    assert site.counted("x/a") == 1                              # landing, extended
    site.journal.ack(outcomes)
    assert site.counted("x/a") == 1                              # u's "a v1"
    site.write("x/new", b"first")
    site.journal.enqueue([Change(S, "x/new", "put", targets=("t",))])
    outcomes = site.read("t", site.claim("t"))
    _append(site, "x/new", b", second")
    assert site.counted("x/new") == 0
    site.write("x/new", b"FIRST, second, third")
    assert site.counted("x/new") == 1
    site.journal.ack(outcomes)


def _restore_mtime(site, rel: str, mtime_ns: int) -> None:
    """As `cp -p`, `rsync -t`, `tar x` or `touch -r` leave a restored file: its old mtime."""
    os.utime(site.root / rel, ns=(mtime_ns, mtime_ns))


def _last_write(site, rel: str, data: bytes, acked_early: bool) -> None:
    """`rel` written with `data`; `acked_early`: sent by a put queued before the write (an
    earlier event's) and acked before the write's event is read."""
    if acked_early:
        site.journal.enqueue([Change(S, rel, "put")])
    site.write(rel, data)
    if acked_early:
        site.drain()


@pytest.mark.parametrize("acked_early", [False, True])
def test_a_restored_copy_of_a_counted_version_is_another_version(site, acked_early):
    """x/log ("A", shipped) truncated to a prefix by mistake: 1 (the note: A's rows).
    Restored from a backup with cp -p (the same bytes and mtime): an extension of the
    truncated version, 0 (the note stays A's rows). Shipped: the rows are A's (size,
    mtime) again. Then rewritten (ransomware), its event read first or after its put's
    ack: that destroys the restored version on both targets: 1. Found by review of
    02992b6: 0 (the restored copy's rows equal the note of the one counted:
    Replaced.already; acked early, through own_shipped's counted row), now told apart
    by its version number."""
    replaced = Replaced()
    body = b"".join(f"line {n}\n".encode() for n in range(2000))
    site.write("x/log", body)
    _shipped(site, "x/log")
    m = os.stat(site.root / "x" / "log").st_mtime_ns
    counts = []
    site.write("x/log", body[:5000])                   # truncated by a bad script
    counts.append(site.counted("x/log", replaced=replaced))
    _shipped(site, "x/log")
    site.write("x/log", body)                          # cp -p backup x/log
    _restore_mtime(site, "x/log", m)
    counts.append(site.counted("x/log", replaced=replaced))
    _shipped(site, "x/log")
    _last_write(site, "x/log", b"ENCRYPTED" * 2000, acked_early)   # ransomware
    counts.append(site.counted("x/log", replaced=replaced))
    assert counts == [1, 0, 1], counts


@pytest.mark.parametrize("acked_early", [False, True])
def test_a_rewrite_keeping_size_and_mtime_then_another_counts_twice(site, acked_early):
    """x/d ("A", shipped) rewritten in place, same size, its mtime set back (an encryptor
    that keeps timestamps): 1, the note (t|u, s, m). Shipped: the rows are (s, m) again,
    another version. Rewritten again, its event read first or after its put's ack: that
    destroys the second version: 1. Found by review of 02992b6: 0 both ways (read first,
    also before 02992b6: the rows were the note's, on a local target with no token)."""
    replaced = Replaced()
    site.write("x/d", b"A" * 10000)
    _shipped(site, "x/d")
    m = os.stat(site.root / "x" / "d").st_mtime_ns
    counts = []
    site.write("x/d", b"B" * 10000)
    _restore_mtime(site, "x/d", m)
    counts.append(site.counted("x/d", replaced=replaced))
    _shipped(site, "x/d")
    _last_write(site, "x/d", b"C" * 20000, acked_early)
    counts.append(site.counted("x/d", replaced=replaced))
    assert counts == [1, 1], counts
