"""Breaking keep_deleted (issue 17) at the unit level: the size cap's purge plan and the
TIME argument of `mirrord trash` / `mirrord undelete`. Each test is one shape an operator
meets; a failing one is a finding reported to the lead (tests written by the breaker)."""

from __future__ import annotations

import pytest

from mirrord.trash import listing, retention
from mirrord.trash.model import DELETED, DIR_REMOVED, Kept, stamp_of, trash_rel

NOW = 1_795_000_000.0


def kept(path: str, age: float, size: int, why: str = DELETED) -> Kept:
    stamp = stamp_of(NOW - age)
    return Kept(path, stamp, why, size, 0, trash_rel(stamp, why, path))


def test_the_cap_never_purges_the_newest_kept_version():
    """A trash over keep_deleted_max purges oldest first, but never the newest entry: the
    file an rm -rf took a second ago is what the operator is about to undelete. Here one
    big file, deleted a second ago, alone exceeds the cap; plan() purges it at once."""
    entries = [kept("old.bin", 7200, 10), kept("big.bin", 1, 5000)]
    todo = retention.plan(entries, now=NOW, window=7 * 86400, cap=1000)
    assert [k.path for k in todo.purge] == ["old.bin"]   # oldest first ...
    assert todo.files == 1                                # ... never the newest


def test_the_cap_never_purges_part_of_the_newest_directory_removal():
    """A directory removal is one change (one '<stamp>.dir-removed' place): the cap purging
    half of it leaves a restore that brings back half a directory. The newest change is
    the one to keep whole."""
    entries = [kept("old.bin", 7200, 10)]
    entries += [kept(f"2024/f{i:03}.jpg", 1, 100, DIR_REMOVED) for i in range(20)]
    todo = retention.plan(entries, now=NOW, window=7 * 86400, cap=1000)
    assert [k.path for k in todo.purge] == ["old.bin"]
    assert todo.files == 20


def test_the_cap_purges_oldest_first_and_stops_once_under():
    """What held: oldest first, stopping as soon as the rest is at most the cap."""
    entries = [kept("c", 10 * 3600, 400), kept("a", 30 * 3600, 400), kept("b", 20 * 3600, 400)]
    todo = retention.plan(entries, now=NOW, window=7 * 86400, cap=800)
    assert [k.path for k in todo.purge] == ["a"] and todo.over_cap == 1 and todo.bytes == 800


def test_the_cap_leaves_an_hour_for_the_operator_to_react():
    """An rm -rf arrives as one delete per file, each its own stamp: protecting only the
    newest stamp would still purge most of what it removed. Nothing that changed within
    retention.CAP_GRACE is purged by the cap; older entries go first."""
    entries = [kept(f"2024/f{i:03}.jpg", 60 + i, 100) for i in range(20)]   # a minute ago
    entries += [kept("week-old.bin", 5 * 86400, 300), kept("two-hours.bin", 7200, 300)]
    todo = retention.plan(entries, now=NOW, window=7 * 86400, cap=1000)
    assert [k.path for k in todo.purge] == ["week-old.bin", "two-hours.bin"]
    assert todo.files == 20 and todo.bytes == 2000    # over the cap, kept anyway


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_time_is_a_usage_error_not_now(text):
    """What held: parse_time itself refuses an empty TIME (the CLI skips it before asking:
    tests/e2e/test_trash_breakit.py::test_an_empty_time_is_a_usage_error)."""
    with pytest.raises(listing.UsageError):
        listing.parse_time(text, now=NOW)


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:30:00+05:00"])
def test_a_time_out_of_range_is_a_usage_error_not_a_traceback(text):
    """What held: a time before year 1 in UTC is either a time or a UsageError, never an
    OverflowError escaping as a traceback."""
    try:
        listing.parse_time(text, now=NOW)
    except listing.UsageError:
        pass


@pytest.mark.parametrize("text, expected", [
    ("2026-11-29T12:00:00Z", 1_795_953_600.0),
    ("2026-11-29T13:00:00+01:00", 1_795_953_600.0),
    ("2026-11-29T12:00:00", 1_795_953_600.0),
    ("20261129T120000.000000Z", 1_795_953_600.0),
    ("20261129T120000Z", 1_795_953_600.0),
    ("2026-11-29", 1_795_910_400.0),
    ("90s", NOW - 90),
])
def test_time_formats_an_operator_types(text, expected):
    """What held: ISO 8601 extended and basic, with Z / an offset / none (UTC), a stamp, a
    date alone (midnight UTC) and a duration ago."""
    assert listing.parse_time(text, now=NOW) == pytest.approx(expected)


# ------------------------------------------- a file standing where a parent directory comes

import time  # noqa: E402

from mirrord.targets.local import LocalTarget  # noqa: E402
from mirrord.targets.model import SyncItem  # noqa: E402
from mirrord.trash import keeper  # noqa: E402


def test_a_file_in_the_way_of_a_new_parent_directory_is_kept_before_it_is_removed(tmp_path):
    """On the primary `d` was a file, then `rm d; mkdir d; echo > d/z.jpg`. The put of
    d/z.jpg reaches the target while the file `d` still stands there (the mkdir row of `d`
    need not come first): keep_items only keeps item.path (d/z.jpg: nothing there), and
    LocalTarget._open_parent unlinks the file `d` to make the directory. The file's
    only copy on the mirror is gone, unkept. Every file a sync removes must be kept."""
    mirror, src = tmp_path / "m", tmp_path / "s"
    mirror.mkdir()
    (src / "d").mkdir(parents=True)
    (mirror / "d").write_bytes(b"d was a file")
    (src / "d/z.jpg").write_bytes(b"z")
    target = LocalTarget("m", str(mirror), fsync=False)
    target.open()
    try:
        st = (src / "d/z.jpg").stat()
        item = SyncItem("d/z.jpg", "file", str(src / "d/z.jpg"), st.st_size, st.st_mtime,
                        mtime_ns=st.st_mtime_ns, mode=0o644, when=time.time())
        assert keeper.keep_items(target, [item]) == [None]
        (res,) = target.sync([item])
        assert res.error is None and (mirror / "d/z.jpg").read_bytes() == b"z"
        kept = {k.path: (mirror / k.key).read_bytes() for k in target.trash_list()}
        assert kept.get("d") == b"d was a file"
    finally:
        target.close()


@pytest.mark.parametrize("text", ["1764417600", "1764417600.5", "30"])
def test_a_bare_number_is_a_usage_error_not_seconds_ago(text):
    """A pasted Unix time read as that many seconds ago would silently match nothing."""
    with pytest.raises(listing.UsageError, match="unit"):
        listing.parse_time(text, now=NOW)
