"""mirrord.journal.first_copies: what it keeps, for how long, and when it asks the source.
The alarm's shapes on real files are in tests/integration/test_alarm_first_copies.py."""

from __future__ import annotations

from mirrord.journal.first_copies import FirstCopies
from mirrord.journal.proposals import Seen

S = "up"
LOOK = Seen(5, 1_000, 0o644, 2_000)


def test_the_version_looked_at_is_the_same_version_and_nothing_else():
    fc = FirstCopies()
    fc.note("t", S, b"f", LOOK)
    assert fc.same_version("t", S, b"f", lambda: (5, 1_000, 2_000))
    assert not fc.same_version("t", S, b"f", lambda: (5, 1_000, 2_001))   # changed since
    assert not fc.same_version("t", S, b"f", lambda: (6, 1_000, 2_000))
    assert not fc.same_version("t", S, b"f", lambda: None)                # gone
    assert not fc.same_version("u", S, b"f", lambda: (5, 1_000, 2_000))   # another target
    assert not fc.same_version("t", "other", b"f", lambda: (5, 1_000, 2_000))
    assert fc.any(S, b"f", ("u", "t")) and not fc.any(S, b"f", ("u",))


def test_the_source_is_asked_only_when_a_look_is_kept():
    fc, asked = FirstCopies(), []
    assert not fc.same_version("t", S, b"f", lambda: asked.append(1))
    assert asked == []


def test_a_look_without_an_inode_change_time_is_not_kept_and_drops_an_older_one():
    fc = FirstCopies()
    fc.note("t", S, b"f", LOOK)
    fc.note("t", S, b"f", Seen(5, 1_000, None, 0))
    assert not fc.any(S, b"f", ("t",))


def test_forget_and_the_bound_oldest_first():
    fc = FirstCopies(limit=3)
    for name in (b"a", b"b", b"c"):
        fc.note("t", S, name, LOOK)
    fc.note("t", S, b"a", LOOK)          # noted again: the newest now
    fc.note("t", S, b"d", LOOK)          # over the bound: b, the oldest, goes
    assert [fc.any(S, n, ("t",)) for n in (b"a", b"b", b"c", b"d")] == [True, False, True, True]
    fc.forget("t", S, b"c")
    assert not fc.any(S, b"c", ("t",))
