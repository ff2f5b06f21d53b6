"""TypeSwaps (mirrord.type_swaps): which repairs of a comparison may replace an entry of the
other type, fed keys in mirrord.treewalk.entry_key order as both comparisons merge them."""

from __future__ import annotations

from mirrord.type_swaps import TypeSwaps


def test_a_file_repair_waits_until_its_directory_key_is_passed():
    sw: TypeSwaps[str] = TypeSwaps()
    sw.file_repair(b"a", "put a")
    assert sw.passed(b"a-1") == []          # 'a-1' < 'a/': a directory 'a' may still come
    assert sw.passed(b"a.bak") == []
    assert sw.passed(b"b") == ["put a"]     # past 'a/': nothing of the other type there


def test_a_directory_extra_at_the_files_name_holds_it_until_its_delete_goes():
    sw: TypeSwaps[str] = TypeSwaps()
    sw.file_repair(b"big", "put big")
    sw.file_repair(b"big-1", "put big-1")
    assert sw.passed(b"big/") == []
    sw.extra(b"big/", True)
    assert sw.passed(b"c") == ["put big-1"]
    assert sw.release(set()) == ([], ["put big"])          # its removal refused: kept back
    sw.file_repair(b"big", "put big")
    sw.extra(b"big/", True)
    assert sw.release({b"big/"}) == (["put big"], [])       # its removal proposed: sent


def test_repairs_at_and_below_a_file_extra_are_held():
    sw: TypeSwaps[str] = TypeSwaps()
    sw.extra(b"thing", False)
    sw.passed(b"thing-1")
    assert sw.below_file(b"thing-1", "x") is False
    assert sw.below_file(b"thing/", "mkdir thing")
    assert sw.below_file(b"thing/a", "put thing/a")
    sw.passed(b"thing0")                    # past everything below 'thing/'
    assert sw.below_file(b"thing0", "put thing0") is False
    assert sw.release({b"other"}) == ([], ["mkdir thing", "put thing/a"])


def test_a_file_extra_that_is_no_name_of_a_later_directory_holds_nothing():
    sw: TypeSwaps[str] = TypeSwaps()
    sw.extra(b"a", False)
    sw.file_repair(b"b", "put b")
    assert sw.passed(b"c") == ["put b"] and sw.files == []
    assert sw.rest() == [] and sw.release(None) == ([], [])


def test_what_waits_at_the_end_is_sent():
    sw: TypeSwaps[str] = TypeSwaps()
    sw.file_repair(b"z", "put z")
    assert sw.rest() == ["put z"] and sw.rest() == []


def test_an_extra_below_the_name_holds_the_file_repair_when_the_directory_row_is_missing():
    """A record that names X/a but not the directory X/ itself: the put of X still waits
    for the removal (review)."""
    sw: TypeSwaps[str] = TypeSwaps()
    sw.file_repair(b"X", "put X")
    sw.extra(b"X/a", False)
    assert sw.passed(b"Y") == []
    assert sw.release({b"X/a"}) == (["put X"], [])


def test_missing_applies_the_one_rule_both_comparisons_share():
    sw: TypeSwaps[str] = TypeSwaps()
    assert sw.missing(b"d/", "mkdir d", True) is False        # a directory: goes now
    assert sw.missing(b"f", "put f", False) is True           # a file: waits for f/
    sw.extra(b"g", False)
    assert sw.missing(b"g/", "mkdir g", True) is True          # over a file extra: held
    assert sw.passed(b"h") == ["put f"]
    assert sw.release(set()) == ([], ["mkdir g"])


def test_keep_rest_holds_what_waits_with_no_delete_to_go_with():
    sw: TypeSwaps[str] = TypeSwaps()
    sw.file_repair(b"a", "put a")
    sw.keep_rest()
    assert sw.rest() == [] and sw.release(None) == (["put a"], [])
    sw.file_repair(b"a", "put a")
    sw.keep_rest()
    assert sw.release(set()) == ([], ["put a"])
