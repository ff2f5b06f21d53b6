"""`mirrord undelete --since`: listing.kept_under hands the bound to the target
(Target.trash_list since=), and what the command chooses is what choose(since=...) alone
chose before, also for a bound between two microseconds and for one no stamp can hold."""

from __future__ import annotations

from mirrord.targets.memory import MemoryTarget
from mirrord.trash import listing
from mirrord.trash.model import stamp_of

B = 1_700_000_100


def _target(tmp_path) -> MemoryTarget:
    t = MemoryTarget()
    for i, when in enumerate((B - 60, B - 0.000001, B, B + 0.000001, B + 5)):
        f = tmp_path / "put"
        f.write_bytes(b"v%d" % i)
        t.put("d/f", str(f), size=2, mtime=1.0)
        t.keep("d/f", stamp=stamp_of(when), coming="file")
    return t


def test_kept_under_passes_the_bound_and_choose_still_decides(tmp_path):
    t = _target(tmp_path)
    asked = []
    real = t.trash_list
    t.trash_list = lambda prefix="", *, since=None: asked.append(since) or real(prefix, since=since)
    everything = listing.kept_under(t, ["d"])
    for since in (B, B + 0.0000004, B - 0.0000004, B + 0.0000006, B + 5, B + 6, -1e12, 1e12):
        bounded = listing.kept_under(t, ["d"], since=since)
        assert listing.choose(bounded, since=since) == listing.choose(everything, since=since)
        assert all(k in everything for k in bounded)
        exact = [k for k in everything if k.when >= since]   # the command's own test
        assert [k for k in bounded if k.when >= since] == exact
        assert listing.choose(bounded, at=B + 0.5, since=since) == listing.choose(
            everything, at=B + 0.5, since=since)
    assert asked[0] is None and asked[1:4] == [B, B + 0.0000004, B - 0.0000004]
    assert asked[-2:] == [None, None]     # no stamp holds those years: choose() alone bounds
    assert {k.stamp for k in listing.kept_under(t, ["d"], since=B)} == {
        stamp_of(B), stamp_of(B + 0.000001), stamp_of(B + 5)}
