"""A catch-up that finds a file whose put is in flight (the walk for new hard links, a
start's or an overflow's catch-up): the file is sent once when the put ships what the walk
saw, and again when it changed between the worker's look and the walk's, a write through
a hard link outside the source included (which no event reports). On the real Journal,
catch-up walk, Shipper and LocalTarget; the worker's order is forced by hand.

Found by the large-file benchmark: a 512 MiB file renamed in while a hard link to it
stood outside the source was sent twice (mirrord.journal.proposals)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper, serial
from mirrord.targets.local import LocalTarget
from tests.exactness import differences, source_snapshot, target_snapshot
from tests.fakes import Clock

S, T = "up", "local"
BODY = os.urandom(1 << 20)


class Site:
    """A source with `f` (and a hard link to it outside the source), a real LocalTarget
    counting its puts, a Journal on a fake clock and a Shipper on the caller's thread."""

    def __init__(self, tmp_path: Path):
        self.src = tmp_path / "src"
        self.src.mkdir()
        self.outside = tmp_path / "elsewhere"     # another name of the same inode
        (self.src / "f").write_bytes(BODY)
        os.link(self.src / "f", self.outside)
        self.target = LocalTarget(T, tmp_path / "mirror", fsync=False)
        self.target.open()
        self.puts: list[str] = []
        real = self.target.put

        def counted(path, *args, **kwargs):
            self.puts.append(path)
            return real(path, *args, **kwargs)

        self.target.put = counted
        self.source = SourceConfig(S, self.src, (T,))
        self.db = tmp_path / "journal.db"
        self.j = Journal(self.db, {S: (T,)}, clock=Clock(1_800_000_000.0))
        self.shipper = Shipper({T: self.target}, [self.source], {T: 2}, executor=serial)

    def walk(self) -> None:
        """The catch-up the daemon runs (here: against the real `shipped` record), its
        proposals recorded as the daemon's main thread records them."""
        catch_up(self.db, self.source, [T], self.j.enqueue)

    def drain(self) -> None:
        for _ in range(20):
            ops = self.j.claim(T, 100, now=1e12)
            if not ops:
                return
            self.j.ack(self.shipper.run_ops(self.target, ops))
        raise AssertionError("the journal did not drain")

    def target_file(self) -> Path:
        return Path(self.target.root) / "f"

    def exact(self) -> None:
        diff = differences(source_snapshot(self.src), target_snapshot(self.target))
        assert not any(diff.values()), diff

    def close(self) -> None:
        self.shipper.shutdown()
        self.j.close()
        self.target.close()


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.close()


def test_a_file_found_in_flight_is_sent_once(site):
    site.j.enqueue([Change(S, "f", "put", size=len(BODY))])
    ops = site.j.claim(T, 100, now=1e12)          # the put is at a worker
    site.walk()                                   # the links walk finds f, not yet shipped
    site.j.ack(site.shipper.run_ops(site.target, ops))
    site.drain()
    assert site.puts == ["f"]
    site.exact()


def test_a_write_through_the_outside_link_after_the_workers_look_is_sent(site):
    site.j.enqueue([Change(S, "f", "put", size=len(BODY))])
    ops = site.j.claim(T, 100, now=1e12)
    outcomes = site.shipper.run_ops(site.target, ops)   # the worker read f ...
    with open(site.outside, "r+b") as fh:               # ... then f changed under the other
        fh.write(b"changed through the other name")     # name: no event for f
    st = os.stat(site.src / "f")
    os.utime(site.src / "f", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    site.walk()                                         # the walk sees the new f
    site.j.ack(outcomes)
    site.drain()
    assert site.puts == ["f", "f"]
    site.exact()


def test_a_rewrite_with_its_mtime_put_back_after_the_workers_look_is_sent(site):
    """Same size, mtime and mode after the write (`touch -r`, `rsync --inplace -t` through
    the outside name): only the inode change time tells (a breaker: lost for good)."""
    site.j.enqueue([Change(S, "f", "put", size=len(BODY))])
    ops = site.j.claim(T, 100, now=1e12)
    outcomes = site.shipper.run_ops(site.target, ops)   # the worker read f
    st = os.stat(site.outside)
    with open(site.outside, "r+b") as fh:
        fh.write(b"X" * 32)
    os.utime(site.outside, ns=(st.st_atime_ns, st.st_mtime_ns))   # mtime as it was
    assert (os.stat(site.src / "f").st_size, os.stat(site.src / "f").st_mtime_ns) == (
        st.st_size, st.st_mtime_ns)
    site.walk()
    site.j.ack(outcomes)
    site.drain()
    assert site.puts == ["f", "f"]
    assert (site.target_file()).read_bytes() == (site.src / "f").read_bytes()


def test_a_write_between_the_walk_and_the_workers_look_is_sent_again(site):
    site.j.enqueue([Change(S, "f", "put", size=len(BODY))])
    ops = site.j.claim(T, 100, now=1e12)
    site.walk()                                         # the walk saw the old f
    with open(site.outside, "ab") as fh:                # then it grew through the other name
        fh.write(b"more")
    site.j.ack(site.shipper.run_ops(site.target, ops))  # the worker read the new f
    site.drain()
    # the walk's look is not what was shipped: sent again (the new f both times), exact
    assert site.puts == ["f", "f"]
    site.exact()


def test_a_chmod_the_walk_saw_and_the_put_shipped_is_not_sent_again(site):
    site.j.enqueue([Change(S, "f", "put", size=len(BODY))])
    ops = site.j.claim(T, 100, now=1e12)
    os.chmod(site.src / "f", 0o600)
    site.walk()
    site.j.ack(site.shipper.run_ops(site.target, ops))
    site.drain()
    assert site.puts == ["f"]
    site.exact()
