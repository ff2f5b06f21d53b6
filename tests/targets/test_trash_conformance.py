"""The keep_deleted promises of mirrord.targets.base.Target (keep, trash_*), on every target.

Runs unchanged against memory, local, rsync (real sshd) and s3 (real SeaweedFS). Where
something is kept is only ever looked at through trash_list(), never through raw paths.
A versioned S3 bucket keeps differently by contract (keep() copies nothing and returns
0; a version's stamp is the server's time of the change, in whole seconds on SeaweedFS):
tests/targets/test_s3_trash.py holds its suite. Each test simulates the engine: keep(),
then the change itself (put / delete).
"""

from __future__ import annotations

import os

import pytest

from mirrord.errors import NotFound, PermanentError
from mirrord.targets.mtime import exact_ns, ns_to_float
from mirrord.trash.model import DELETED, DIR_REMOVED, OVERWRITTEN, stamp_of

NS = 1_600_000_000_123_456_789
STAMP = stamp_of(1_700_000_000.5)
LATER = stamp_of(1_700_000_060.25)


def source(tmp_path, data: bytes, *, ns: int = NS, mode: int = 0o640) -> str:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    p = src / f"f{len(os.listdir(src))}"   # a fresh source file per put
    p.write_bytes(data)
    os.chmod(p, mode)
    os.utime(p, ns=(ns, ns))
    return str(p)


def put(target, tmp_path, path: str, data: bytes, *, ns: int = NS, mode: int = 0o640):
    return target.put(path, source(tmp_path, data, ns=ns, mode=mode), size=len(data),
                      mtime=ns_to_float(ns), mtime_ns=ns, mode=mode)


def kept(target, prefix: str = ""):
    return {k.path: k for k in target.trash_list(prefix)}


def fetched(target, k, tmp_path) -> bytes:
    out = tmp_path / "fetched"
    target.trash_fetch(k, str(out))
    return out.read_bytes()


def same_time(target, a_ns: int, b_ns: int) -> bool:
    return abs(a_ns - b_ns) <= max(target.features.mtime_precision, 1e-6) * 1e9


def user_files(target) -> set[str]:
    return {e.path for e in target.list() if not e.is_dir}


def test_overwrite_keeps_old_bytes_mtime_mode_and_the_file_stays(target, tmp_path):
    put(target, tmp_path, "d/a.txt", b"old bytes", mode=0o604)
    assert target.keep("d/a.txt", stamp=STAMP, coming="file") == 9
    assert target.read("d/a.txt") == b"old bytes", "an overwrite's keep leaves the file for the put"
    put(target, tmp_path, "d/a.txt", b"new", ns=NS + 10**9, mode=0o600)
    [k] = target.trash_list()
    assert (k.path, k.stamp, k.why, k.size) == ("d/a.txt", STAMP, OVERWRITTEN, 9)
    assert same_time(target, k.mtime_ns, NS)
    if target.features.keeps_mode:
        assert k.mode == 0o604
    assert fetched(target, k, tmp_path) == b"old bytes"
    assert target.read("d/a.txt") == b"new"


@pytest.mark.parametrize("coming", ["absent", "dir"])
def test_a_file_deleted_or_replaced_by_a_directory_is_kept_as_deleted(target, tmp_path, coming):
    put(target, tmp_path, "d/gone.bin", b"x" * 1000)
    assert target.keep("d/gone.bin", stamp=STAMP, coming=coming) == 1000
    target.delete("d/gone.bin")
    assert target.stat("d/gone.bin") is None
    [k] = target.trash_list()
    assert (k.path, k.stamp, k.why, k.size) == ("d/gone.bin", STAMP, DELETED, 1000)
    assert same_time(target, k.mtime_ns, NS)
    assert fetched(target, k, tmp_path) == b"x" * 1000


@pytest.mark.parametrize("coming", ["absent", "file"])
def test_a_removed_directory_keeps_every_file_below_it(target, tmp_path, coming):
    tree = {"t/a": b"1", "t/b/c": b"22", "t/b/d/e": b"333", "t/b/d/f g": b"4444"}
    for path, data in tree.items():
        put(target, tmp_path, path, data)
    put(target, tmp_path, "tt/stays", b"5")
    assert target.keep("t", stamp=STAMP, coming=coming) == 10
    target.delete("t", tree=True)
    got = kept(target)
    assert set(got) == set(tree)
    for path, k in got.items():
        assert (k.stamp, k.why, k.size) == (STAMP, DIR_REMOVED, len(tree[path]))
        assert fetched(target, k, tmp_path) == tree[path]
    assert user_files(target) == {"tt/stays"}


def test_nothing_is_kept_for_nothing_or_a_directory_staying_a_directory(target, tmp_path):
    assert target.keep("never/was.txt", stamp=STAMP, coming="absent") == 0
    assert target.keep("never", stamp=STAMP, coming="file") == 0
    put(target, tmp_path, "dir/x", b"x")
    assert target.keep("dir", stamp=STAMP, coming="dir") == 0
    assert list(target.trash_list()) == []
    assert user_files(target) == {"dir/x"}


def test_keep_twice_with_one_stamp_never_replaces_the_old_bytes(target, tmp_path):
    # kill -9 after keep, before the put: the retry keeps again with the same stamp
    put(target, tmp_path, "k.txt", b"old")
    assert target.keep("k.txt", stamp=STAMP, coming="file") == 3
    put(target, tmp_path, "k.txt", b"NEW BYTES", ns=NS + 10**9)
    assert target.keep("k.txt", stamp=STAMP, coming="file") == 0
    [k] = target.trash_list()
    assert fetched(target, k, tmp_path) == b"old"
    assert same_time(target, k.mtime_ns, NS)


def test_keep_twice_for_a_delete_keeps_once(target, tmp_path):
    put(target, tmp_path, "del.txt", b"bytes")
    assert target.keep("del.txt", stamp=STAMP, coming="absent") == 5
    # the retry after kill -9: renamed away already, or (S3) the kept copy is not made again
    assert target.keep("del.txt", stamp=STAMP, coming="absent") == 0
    target.delete("del.txt")
    [k] = target.trash_list()
    assert (k.why, fetched(target, k, tmp_path)) == (DELETED, b"bytes")


def test_the_trash_never_shows_in_list_or_stat(target, tmp_path):
    put(target, tmp_path, "a/over", b"1")
    put(target, tmp_path, "a/del", b"2")
    put(target, tmp_path, "b/c", b"3")
    target.keep("a/over", stamp=STAMP, coming="file")
    target.keep("a/del", stamp=STAMP, coming="absent")
    target.delete("a/del")
    target.keep("b", stamp=STAMP, coming="absent")
    target.delete("b", tree=True)
    assert len(list(target.trash_list())) == 3
    entries = list(target.list())
    assert {e.path for e in entries if not e.is_dir} == {"a/over"}
    assert not any(e.path.startswith(".mirrord") for e in entries)
    assert target.stat("a/del") is None and target.stat("b/c") is None
    assert target.stat("b") is None


def test_trash_list_filters_by_the_original_path(target, tmp_path):
    for path in ["p/a", "p/sub/b", "px/c", "q"]:
        put(target, tmp_path, path, path.encode())
        target.keep(path, stamp=STAMP, coming="absent")
        target.delete(path)
    assert set(kept(target)) == {"p/a", "p/sub/b", "px/c", "q"}
    assert set(kept(target, "p")) == {"p/a", "p/sub/b"}
    assert set(kept(target, "p/")) == {"p/a", "p/sub/b"}
    assert set(kept(target, "p/sub")) == {"p/sub/b"}
    assert set(kept(target, "p/a")) == {"p/a"}
    assert set(kept(target, "nope")) == set()


def test_one_path_kept_at_two_stamps_is_two_versions(target, tmp_path):
    put(target, tmp_path, "v.txt", b"first")
    target.keep("v.txt", stamp=STAMP, coming="file")
    put(target, tmp_path, "v.txt", b"second", ns=NS + 10**9)
    target.keep("v.txt", stamp=LATER, coming="absent")
    target.delete("v.txt")
    versions = sorted(target.trash_list(), key=lambda k: k.stamp)
    assert [(k.stamp, k.why) for k in versions] == [(STAMP, OVERWRITTEN), (LATER, DELETED)]
    assert [fetched(target, k, tmp_path) for k in versions] == [b"first", b"second"]


def test_purge_removes_exactly_the_given_ones(target, tmp_path):
    for path in ["r/1", "r/2", "r/3"]:
        put(target, tmp_path, path, b"x")
        target.keep(path, stamp=STAMP, coming="absent")
        target.delete(path)
    got = kept(target)
    target.trash_purge([got["r/1"], got["r/3"]])
    assert set(kept(target)) == {"r/2"}
    target.trash_purge([got["r/1"]])   # absent already: not an error
    target.trash_purge([got["r/2"]])
    assert list(target.trash_list()) == []


def test_restore_puts_the_bytes_back_with_mtime_and_mode_and_the_kept_entry_stays(target, tmp_path):
    data = bytes(range(256)) * 40
    put(target, tmp_path, "img/photo.jpg", data, mode=0o604)
    target.keep("img/photo.jpg", stamp=STAMP, coming="absent")
    target.delete("img/photo.jpg")
    [k] = target.trash_list()
    entry = target.trash_restore(k, "img/photo.jpg")
    assert entry.path == "img/photo.jpg" and entry.size == len(data)
    assert target.read("img/photo.jpg") == data
    st = target.stat("img/photo.jpg")
    assert same_time(target, st.mtime_ns, NS)
    if target.features.keeps_mode:
        assert st.mode == 0o604
    assert [x.path for x in target.trash_list()] == ["img/photo.jpg"], "the kept entry stays"
    target.trash_restore(k, "elsewhere/copy.jpg")   # to another path, parents made
    assert target.read("elsewhere/copy.jpg") == data


def test_restore_over_a_newer_file_replaces_it(target, tmp_path):
    put(target, tmp_path, "o.txt", b"old")
    target.keep("o.txt", stamp=STAMP, coming="file")
    put(target, tmp_path, "o.txt", b"newer", ns=NS + 10**9)
    [k] = target.trash_list()
    target.trash_restore(k, "o.txt")
    assert target.read("o.txt") == b"old"
    assert same_time(target, target.stat("o.txt").mtime_ns, NS)


def test_restore_and_fetch_of_a_purged_entry_raise_not_found(target, tmp_path):
    put(target, tmp_path, "p.txt", b"p")
    target.keep("p.txt", stamp=STAMP, coming="absent")
    target.delete("p.txt")
    [k] = target.trash_list()
    target.trash_purge([k])
    with pytest.raises(NotFound):
        target.trash_restore(k, "p.txt")
    with pytest.raises(NotFound):
        target.trash_fetch(k, str(tmp_path / "out"))


ODD_NAMES = ["with space/and space.png", "-e", "--rsh=evil", "ünïcödé/Ωmega.pdf",
             "tab\there.txt", "star*?[x].txt", "$(echo pwned);`id`.txt", "quote'\"s.txt",
             "per%25cent%.jpg"]
NON_UTF8 = b"caf\xe9/na\xefve -e.txt".decode("utf-8", "surrogateescape")


def _odd_name_round_trip(target, tmp_path, name: str) -> None:
    data = os.fsencode(name) * 3
    put(target, tmp_path, name, data)
    assert target.keep(name, stamp=STAMP, coming="absent") == len(data)
    target.delete(name)
    assert user_files(target) == set()
    [k] = target.trash_list(name)
    assert (k.path, k.why) == (name, DELETED)
    assert fetched(target, k, tmp_path) == data
    target.trash_restore(k, name)
    assert target.read(name) == data
    target.trash_purge([k])
    assert list(target.trash_list()) == []


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_are_kept_listed_restored_and_purged(target, tmp_path, name):
    _odd_name_round_trip(target, tmp_path, name)


def test_a_non_utf8_name_is_kept_where_the_target_stores_one(target, tmp_path):
    if target.type == "s3":   # S3 keys are UTF-8: the name is refused, as put refuses it
        with pytest.raises(PermanentError):
            target.keep(NON_UTF8, stamp=STAMP, coming="absent")
        return
    _odd_name_round_trip(target, tmp_path, NON_UTF8)


def test_keep_many_keeps_each_and_reports_per_request(target, tmp_path):
    put(target, tmp_path, "m/1", b"a")
    put(target, tmp_path, "m/2", b"bb")
    errors = target.keep_many([("m/1", STAMP, "absent"), ("m/2", STAMP, "file"),
                               ("m/none", STAMP, "absent")])
    assert errors == [None, None, None]
    target.delete("m/1")
    assert {(k.path, k.why) for k in target.trash_list()} == {("m/1", DELETED),
                                                              ("m/2", OVERWRITTEN)}
    assert target.trash_mode() in ("rename", "copy", "versioning")


def test_a_put_with_a_keep_stamp_keeps_what_it_replaces_or_is_refused(target, tmp_path):
    """Target.put(keep_stamp=...): a target that keeps in its put (keep_by_condition)
    keeps the version it replaces under that stamp; any other refuses the put whole, so
    the version it would replace is never lost unkept."""
    put(target, tmp_path, "d/a.txt", b"old bytes")
    new = source(tmp_path, b"new bytes", ns=NS + 10**9)
    args = dict(size=9, mtime=ns_to_float(NS + 10**9), mtime_ns=NS + 10**9, mode=0o640)
    if not target.features.keep_by_condition:
        with pytest.raises(PermanentError):
            target.put("d/a.txt", new, keep_stamp=STAMP, **args)
        assert target.read("d/a.txt") == b"old bytes" and kept(target) == {}
        return
    target.put("d/a.txt", new, keep_stamp=STAMP, **args)
    assert target.read("d/a.txt") == b"new bytes"
    k = kept(target)["d/a.txt"]
    assert k.stamp == STAMP and fetched(target, k, tmp_path) == b"old bytes"


@pytest.mark.parametrize("mode", [0o640, 0o600], ids=["same mode", "other mode"])
def test_other_bytes_under_the_same_size_and_mtime_are_kept_by_the_put(target, tmp_path, mode):
    """The very version a put may replace unkept is the same bytes, not only the same size
    and mtime: a file rewritten in place with its length kept and its mtime put back
    (ransomware, a script restoring timestamps, `reconcile --checksum` repairing it) kept
    nothing, and the only good copy was gone (a review, helper-155). An identical re-send
    still keeps nothing (tests/reliability/test_same_version_keeps_nothing.py)."""
    put(target, tmp_path, "d/a.txt", b"clean data 01\n")
    if not target.features.keep_by_condition:   # refused whole (the test above)
        return
    bad = source(tmp_path, b"ENCRYPTED-01\n\n", mode=mode)   # 14 bytes, same mtime
    target.put("d/a.txt", bad, size=14, mtime=ns_to_float(NS), mtime_ns=NS, mode=mode,
               keep_stamp=STAMP)
    assert target.read("d/a.txt") == b"ENCRYPTED-01\n\n"
    k = kept(target)["d/a.txt"]
    assert (k.stamp, k.why) == (STAMP, OVERWRITTEN)
    assert fetched(target, k, tmp_path) == b"clean data 01\n"
    # the same bad bytes sent again (a retry after a restart): nothing more kept
    target.put("d/a.txt", source(tmp_path, b"ENCRYPTED-01\n\n", mode=mode), size=14,
               mtime=ns_to_float(NS), mtime_ns=NS, mode=mode, keep_stamp=LATER)
    assert [v.stamp for v in target.trash_list("d/a.txt")] == [STAMP]


@pytest.mark.parametrize("mode", [0o640, 0o600], ids=["same mode", "other mode"])
def test_the_same_bytes_under_another_mtime_keep_nothing_and_the_put_sets_the_mtime(
        target, tmp_path, mode):
    """A put of the bytes the target holds under another mtime (or mode) destroys nothing:
    nothing is kept, and the target takes the new mtime and mode. coreutils `touch` seen
    live (its open for writing reads as a write) sent the same bytes under a new mtime,
    and each target kept them, under the old mtime, as 'overwritten': a duplicate (a
    trial, helper-161). Other bytes of the same size under another mtime are kept."""
    put(target, tmp_path, "d/a.txt", b"clean data 01\n")
    if not target.features.keep_by_condition:   # refused whole (the test above)
        return
    later = NS + 5 * 10**9 + 7_000
    target.put("d/a.txt", source(tmp_path, b"clean data 01\n", ns=later, mode=mode), size=14,
               mtime=ns_to_float(later), mtime_ns=later, mode=mode, keep_stamp=STAMP)
    assert kept(target) == {}
    now = target.stat("d/a.txt")
    assert target.read("d/a.txt") == b"clean data 01\n" and now.size == 14
    assert same_time(target, exact_ns(now.mtime, now.mtime_ns), later)
    if target.features.keeps_mode:
        assert now.mode == mode
    # other bytes, the same size, another mtime: kept as they were (the touched mtime)
    last = later + 3 * 10**9
    target.put("d/a.txt", source(tmp_path, b"ENCRYPTED-01\n\n", ns=last, mode=mode), size=14,
               mtime=ns_to_float(last), mtime_ns=last, mode=mode, keep_stamp=LATER)
    assert target.read("d/a.txt") == b"ENCRYPTED-01\n\n"
    [k] = target.trash_list("d/a.txt")
    assert (k.stamp, k.why, k.size) == (LATER, OVERWRITTEN, 14)
    assert same_time(target, k.mtime_ns, later)
    assert fetched(target, k, tmp_path) == b"clean data 01\n"
