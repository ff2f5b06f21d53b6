"""Target.trash_list(since=...) on every target (memory, local, rsync on a real sshd, S3 'copy'
mode on a real SeaweedFS): the conformance suite's cases for the lower bound on the stamp.

The bound is a stamp (mirrord.trash.model.since_stamp): a version stamped earlier than a
change at `since` would be is not listed; one stamped exactly there or later is. The
whole-second edge is the one swaps.redundant() uses (since = int(change time)): a version
stamped a microsecond before that second is out. That the targets do not even read what
is older is tests/targets/test_trash_since_reads_no_older.py's job.
"""

from __future__ import annotations

import pytest

from mirrord.trash.model import OVERWRITTEN, since_stamp, stamp_of, stamp_time
from tests.targets.test_trash_conformance import put

B = 1_700_000_100                     # a whole second
OLD = stamp_of(B - 100)
EDGE = stamp_of(B - 0.000001)         # the last microsecond before B: 20231114T221459.999999Z
AT = stamp_of(B)                      # exactly at B: ...T221500.000000Z
AFTER = stamp_of(B + 0.5)


def keep_versions(target, tmp_path, path: str, stamps) -> None:
    """One 'overwritten' version of `path` under each stamp, each with its own bytes."""
    for i, stamp in enumerate(stamps):
        put(target, tmp_path, path, f"version {i} of {path}".encode())
        assert target.keep(path, stamp=stamp, coming="file") > 0


def stamps(target, prefix: str = "", **kw) -> set[str]:
    return {k.stamp for k in target.trash_list(prefix, **kw)}


def test_the_edge_stamps_are_what_the_cases_say():
    assert EDGE.endswith("59.999999Z") and AT.endswith("00.000000Z") and EDGE < AT
    assert since_stamp(B) == AT and since_stamp(None) is None


def test_versions_before_since_are_not_listed_those_at_and_after_are(target, tmp_path):
    keep_versions(target, tmp_path, "v.txt", [OLD, EDGE, AT, AFTER])
    assert stamps(target) == {OLD, EDGE, AT, AFTER}
    assert stamps(target, since=None) == {OLD, EDGE, AT, AFTER}
    assert stamps(target, since=B) == {AT, AFTER}                  # the whole-second edge
    assert stamps(target, since=B - 0.000001) == {EDGE, AT, AFTER}  # exactly at EDGE
    assert stamps(target, since=stamp_time(AFTER)) == {AFTER}      # exactly at AFTER
    assert stamps(target, since=B + 0.6) == set()
    assert stamps(target, since=B - 1000) == {OLD, EDGE, AT, AFTER}
    assert {k.why for k in target.trash_list(since=B)} == {OVERWRITTEN}


def test_since_rounds_to_the_microsecond_as_stamps_do(target, tmp_path):
    """A change at B + 0.4 us is stamped AT (stamp_of rounds): so is the bound."""
    keep_versions(target, tmp_path, "r.txt", [EDGE, AT])
    assert stamps(target, since=B + 0.0000004) == {AT}
    assert stamps(target, since=B - 0.0000004) == {AT}
    assert stamps(target, since=B + 0.0000006) == set()


def test_since_and_the_path_prefix_bound_together(target, tmp_path):
    keep_versions(target, tmp_path, "p/a", [OLD, AFTER])
    keep_versions(target, tmp_path, "p/sub/b", [EDGE, AT])
    keep_versions(target, tmp_path, "px", [OLD, AT])
    got = {(k.path, k.stamp) for k in target.trash_list("p", since=B)}
    assert got == {("p/a", AFTER), ("p/sub/b", AT)}
    assert {(k.path, k.stamp) for k in target.trash_list("px", since=B)} == {("px", AT)}
    assert {(k.path, k.stamp) for k in target.trash_list(since=stamp_time(AFTER))} == {
        ("p/a", AFTER)}
    assert list(target.trash_list("nope", since=B)) == []


def test_a_kept_directory_below_the_bound_is_not_listed(target, tmp_path):
    for path in ("t/a", "t/b/c"):
        put(target, tmp_path, path, path.encode())
    target.keep("t", stamp=EDGE, coming="absent")
    target.delete("t", tree=True)
    put(target, tmp_path, "t/a", b"again")
    target.keep("t", stamp=AT, coming="absent")
    target.delete("t", tree=True)
    assert {(k.path, k.stamp) for k in target.trash_list(since=B)} == {("t/a", AT)}
    assert {(k.path, k.stamp) for k in target.trash_list("t/b", since=B)} == set()
    assert {(k.path, k.stamp) for k in target.trash_list("t/b")} == {("t/b/c", EDGE)}


@pytest.mark.parametrize("since", [-1e12, 1e12, float("nan")])
def test_a_bound_no_stamp_can_express_is_refused(target, since):
    with pytest.raises(ValueError):
        list(target.trash_list(since=since))
