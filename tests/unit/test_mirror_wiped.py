"""WipeWatch (mirrord/mirror_wiped.py): a heartbeat of this run gone from a target."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mirrord.errors import RetryableError
from mirrord.mirror_wiped import REASON, WipeWatch
from mirrord.targets.model import Features
from tests.fakes import Clock


class FakeTarget:
    def __init__(self, name: str, *, guards_root: bool = False):
        self.name = name
        self.features = Features(guards_root=guards_root)
        self.meta: dict[str, bytes] = {}
        self.fail: Exception | None = None

    def read_meta(self, name: str) -> bytes | None:
        if self.fail is not None:
            raise self.fail
        return self.meta.get(name)


class FakeDaemon:
    def __init__(self):
        self.cfg = SimpleNamespace(sources=[SimpleNamespace(name="up", targets=("s3",)),
                                            SimpleNamespace(name="other", targets=("host",))])
        self.asked: list[tuple[str, str]] = []
        self.trouble_hooks = [lambda d, src, reason: self.asked.append((src.name, reason))]
        self.state: dict[str, dict] = {}
        self.journal = SimpleNamespace(get_state=lambda key: self.state.get(key))


@pytest.fixture
def clock():
    return Clock(1_700_000_000.0)


def written(w: WipeWatch, t: FakeTarget) -> None:
    assert w.before_write(t) is None
    t.meta["heartbeat.json"] = b"{}"
    w.after_write(t.name)


def test_the_first_heartbeat_of_a_run_is_not_looked_for(clock):
    w, t = WipeWatch("heartbeat.json", clock=clock), FakeTarget("s3")
    assert w.before_write(t) is None      # nothing there yet: not a loss
    written(w, t)
    assert w.before_write(t) is None      # ours is there


def test_a_lost_heartbeat_stops_heartbeats_asks_one_pass_and_a_pass_after_it_lets_go(clock):
    w, t, d = WipeWatch("heartbeat.json", clock=clock), FakeTarget("s3"), FakeDaemon()
    written(w, t)
    del t.meta["heartbeat.json"]          # the bucket deleted and created again
    why = w.before_write(t)
    assert why is not None and "is gone" in why
    assert w.before_write(t) == why       # asked again: still not written, no second report
    w.beat(d)
    w.beat(d)
    assert d.asked == [("up", REASON)]    # one pass asked for, through a source feeding it
    d.state["reconcile:s3"] = {"in_sync": True, "dry_run": False, "at": clock.now - 10}
    w.beat(d)
    assert w.before_write(t) == why       # a pass from before the loss proves nothing
    d.state["reconcile:s3"] = {"in_sync": True, "dry_run": True, "at": clock.now + 1}
    w.beat(d)
    assert w.before_write(t) == why       # nor does a dry run
    d.state["reconcile:s3"] = {"in_sync": False, "dry_run": False, "at": clock.now + 1}
    w.beat(d)
    assert w.before_write(t) == why       # nor a pass that could not repair it all
    d.state["reconcile:s3"] = {"in_sync": True, "dry_run": False, "at": clock.now + 1}
    w.beat(d)
    assert w.before_write(t) is None      # filled again: heartbeats resume
    written(w, t)
    assert w.before_write(t) is None


def test_the_heartbeat_found_again_lets_go(clock):
    w, t = WipeWatch("heartbeat.json", clock=clock), FakeTarget("s3")
    written(w, t)
    t.meta.clear()
    assert w.before_write(t) is not None
    t.meta["heartbeat.json"] = b"{}"      # the same mirror back (a mount returned)
    assert w.before_write(t) is None


def test_a_target_guarding_its_root_itself_is_not_read(clock):
    w, t = WipeWatch("heartbeat.json", clock=clock), FakeTarget("local", guards_root=True)
    written(w, t)
    t.meta.clear()
    t.fail = AssertionError("read_meta called")
    assert w.before_write(t) is None


def test_a_read_that_fails_raises_and_decides_nothing(clock):
    w, t = WipeWatch("heartbeat.json", clock=clock), FakeTarget("s3")
    written(w, t)
    t.fail = RetryableError("s3: connection refused")
    with pytest.raises(RetryableError):
        w.before_write(t)
    t.fail = None
    assert w.before_write(t) is None and w.wiped == {}
