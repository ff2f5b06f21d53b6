"""A row below a directory, queued before that directory's tree removal, runs after it: on
the real Journal, Shipper and LocalTarget with keep_deleted on, steps taken by hand.

Found by the tester's dir-flip shape under the real daemon (issue 17: `thing` a file, then a
directory holding inner.txt, then a file again, six times; one version of thing/inner.txt
kept as 'dir-removed' and again as 'deleted'). The trace: `rm thing/inner.txt; rmdir thing`
arrive in one read, the delete of inner.txt before the tree removal of thing (the kernel's
order). The delete, queued first, was claimed first; by the time its worker looked at the
source, `mkdir thing; echo > thing/inner.txt` had run there, so the "delete" sent the NEW
inner.txt, ahead of the tree removal. The tree removal then kept that version with its
directory ('dir-removed'), the row's next op sent it again, and its later removal kept it a
second time. Here the source moves on between the claim and the worker, as it did there.
The same happened when the delete was read and claimed one read BEFORE `rmdir thing`
(second test): that delete now waits once for the change that brought the file back
(mirrord.ship_rules.not_yet), and runs after the tree removal that change's read brings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper, serial
from mirrord.targets.local import LocalTarget
from mirrord.trash.keeper import KeepPolicy
from tests.fakes import Clock
from tests.integration.test_shipper_tree_race import _drain

S, T = "up", "local"


def _kept(target: LocalTarget) -> dict[tuple[str, str, int], list[str]]:
    """(path, sha1 of the bytes, mtime ns) -> the '<stamp>.<why>' places that keep it."""
    out: dict[tuple[str, str, int], list[str]] = {}
    for k in target.trash_list():
        data = (Path(target.root) / k.key).read_bytes()
        out.setdefault((k.path, hashlib.sha1(data).hexdigest(), k.mtime_ns), []).append(
            f"{k.stamp}.{k.why}")
    return out


class Site:
    """A source with thing/inner.txt shipped to a LocalTarget with keep_deleted on; a real
    Journal on a fake clock and a Shipper whose batches run on the caller's thread."""

    def __init__(self, tmp: Path):
        self.src = tmp / "src"
        self.thing = self.src / "thing"
        self.thing.mkdir(parents=True)
        (self.thing / "inner.txt").write_bytes(b"inner 0")
        self.clock = Clock(1_800_000_000.0)
        self.target = LocalTarget(T, tmp / "mirror", fsync=False)
        self.target.open()
        self.j = Journal(tmp / "journal.db", {S: (T,)}, clock=self.clock)
        self.shipper = Shipper({T: self.target}, [SourceConfig(S, self.src, (T,))], {T: 2},
                               executor=serial, keep={T: KeepPolicy(86400.0)})
        self.j.enqueue([Change(S, "thing", "mkdir"), Change(S, "thing/inner.txt", "put")])
        self.drain()

    def drain(self) -> None:
        _drain(self.j, self.shipper, self.target)

    def flip_back_to_a_directory(self) -> None:
        """`mkdir thing; echo > thing/inner.txt` at the source, its events not read yet."""
        self.thing.mkdir()
        (self.thing / "inner.txt").write_bytes(b"inner 1")

    def read_the_rest(self) -> None:
        """The flip's events reach the journal; everything is shipped; the target holds it."""
        self.clock.now += 1
        self.j.enqueue([Change(S, "thing", "mkdir"), Change(S, "thing/inner.txt", "put")])
        self.drain()
        assert (Path(self.target.root) / "thing" / "inner.txt").read_bytes() == b"inner 1"

    def back_to_a_file_and_check_kept_once(self) -> None:
        self.clock.now += 1
        (self.thing / "inner.txt").unlink()
        self.thing.rmdir()
        self.thing.write_bytes(b"a file again")
        self.j.enqueue([Change(S, "thing/inner.txt", "delete"),
                        Change(S, "thing", "delete", tree=True), Change(S, "thing", "put")])
        self.drain()
        assert (Path(self.target.root) / "thing").read_bytes() == b"a file again"
        kept = _kept(self.target)
        twice = {key: places for key, places in kept.items() if len(places) > 1}
        assert not twice, f"one version kept more than once: {twice}"
        assert sorted(k[1] for k in kept if k[0] == "thing/inner.txt") == sorted(
            hashlib.sha1(b).hexdigest() for b in (b"inner 0", b"inner 1"))

    def close(self) -> None:
        self.j.close()
        self.target.close()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_a_delete_below_a_tree_removal_waits_for_it_and_each_version_is_kept_once(site):
    """`rm thing/inner.txt; rmdir thing` read together: the delete, queued first, waits for
    the tree removal (EnqueueMixin._wait_below) instead of running ahead of it."""
    site.clock.now += 1
    (site.thing / "inner.txt").unlink()
    site.thing.rmdir()
    site.j.enqueue([Change(S, "thing/inner.txt", "delete"),           # the kernel's order
                    Change(S, "thing", "delete", tree=True)])
    ops = site.j.claim(T, 100)
    site.flip_back_to_a_directory()            # before a worker looks
    site.j.ack(site.shipper.run_ops(site.target, ops))
    site.read_the_rest()
    site.back_to_a_file_and_check_kept_once()


def test_a_delete_in_flight_that_finds_a_file_waits_for_its_event_once(site):
    """The delete of thing/inner.txt is read and claimed before `rmdir thing` is read: its
    worker finds the NEW inner.txt there. Sent then, the tree removal read next kept it with
    its directory and it was sent and kept again (seen under the real daemon after the fix
    above). The file's own event is on its way: the delete waits for it once (a busy wait),
    and runs after the tree removal."""
    site.clock.now += 1
    (site.thing / "inner.txt").unlink()
    site.j.enqueue([Change(S, "thing/inner.txt", "delete")])
    ops = site.j.claim(T, 100)
    assert [(op.path, op.kind) for op in ops] == [("thing/inner.txt", "delete")]
    site.thing.rmdir()
    site.flip_back_to_a_directory()            # before the worker looks
    site.j.ack(site.shipper.run_ops(site.target, ops))
    site.clock.now += 1
    site.j.enqueue([Change(S, "thing", "delete", tree=True)])
    site.read_the_rest()
    site.back_to_a_file_and_check_kept_once()
