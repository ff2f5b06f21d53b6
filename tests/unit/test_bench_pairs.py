"""bench/pairs.py: warm-up rounds run every arm unrecorded before the repetitions, and the
repetitions rotate which arm goes first (pure bookkeeping: the arms are fakes)."""

from __future__ import annotations

import itertools

import pytest

from bench.ack import Arm
from bench.common import PROFILES, Context
from bench.pairs import Pair, run_pair


@pytest.fixture
def ctx():
    c = Context(PROFILES["quick"], reps=3, verbose=False)
    yield c
    c.close()


def _pair(calls: list[str], *, fail_first_peer: bool = False, peer_ok: bool = True) -> Pair:
    seconds = itertools.count(1.0)

    def arm(who: str):
        def run(_ctx):
            calls.append(who)
            if who == "peer" and fail_first_peer and calls.count("peer") == 1:
                raise RuntimeError("peer broke")
            return Arm(next(seconds), 0.5, 1.0)
        return run

    return Pair("3 initial sync", "case", "rclone copy", arm("mirrord"), arm("peer"), "rclone",
                peer_ok, 1000)


def test_warmup_runs_each_arm_first_and_records_none_of_them(ctx):
    ctx.warmup = 1
    calls: list[str] = []
    run_pair(ctx, _pair(calls), "initial s3")
    # warm-up (mirrord, peer), then rep 1 (mirrord, peer), rep 2 (peer, mirrord), rep 3
    assert calls == ["mirrord", "peer", "mirrord", "peer", "peer", "mirrord", "mirrord", "peer"]
    (row,) = ctx.rows
    # seconds 1 and 2 went to the warm-up; the recorded ones are 3..8 in call order
    assert row.mirrord == [3.0, 6.0, 7.0]
    assert row.other == [4.0, 5.0, 8.0]
    assert any("unrecorded first (warm-up)" in n for n in row.notes)


def test_no_warmup_records_every_run(ctx):
    ctx.warmup = 0
    calls: list[str] = []
    run_pair(ctx, _pair(calls), "initial s3")
    assert len(calls) == 6
    (row,) = ctx.rows
    assert sorted(row.mirrord + row.other) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert not any("warm-up" in n for n in row.notes)


def test_a_failed_warmup_is_neither_recorded_nor_fatal(ctx):
    ctx.warmup = 1
    calls: list[str] = []
    run_pair(ctx, _pair(calls, fail_first_peer=True), "initial s3")
    (row,) = ctx.rows
    assert len(row.mirrord) == 3 and len(row.other) == 3
    assert not any("failed" in n for n in row.notes)


def test_a_missing_peer_runs_only_mirrord_in_warmup_and_reps(ctx):
    ctx.warmup = 2
    calls: list[str] = []
    run_pair(ctx, _pair(calls, peer_ok=False), "initial s3")
    assert calls == ["mirrord"] * 5
    (row,) = ctx.rows
    assert row.mirrord == [3.0, 4.0, 5.0] and row.other == []
    assert any("not installed" in n for n in row.notes)
