"""The promises of mirrord.targets.base.Target, checked on every target type.

Runs unchanged against memory, local, rsync (real sshd) and s3 (real SeaweedFS).
"""

from __future__ import annotations

import json
import os

import pytest

from mirrord.errors import NotFound, PermanentError
from mirrord.targets.model import SyncItem
from mirrord.treewalk import entry_key, file_digest

AWKWARD_NAMES = [
    "plain.txt",
    "with space.png",
    "per%25cent%.jpg",
    "plus+sign.gif",
    "-e",
    "--rsh=evil",
    "ünïcödé/Ωmega.pdf",
    "tab\there.txt",
    "star*?[x].txt",
    "$(echo pwned);`id`.txt",
    "quote'\"s.txt",
]

MTIME = 1_600_000_000.25

# Names with characters XML 1.0 cannot carry (S3's DeleteObjects is an XML body, refused
# whole as MalformedXML), next to ones it can (tab, newline, CR, DEL) and a plain one.
CONTROL_NAMES = ["a\x01b.txt", "esc\x1b[31m.txt", "ff\x0c", "nl\nx", "cr\rx", "del\x7f",
                 "nonchar\uffff", "plain.txt"]


def write(tmp_path, name: str, data: bytes, mtime: float = MTIME) -> str:
    p = tmp_path / "src" / name.replace("/", "_")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.utime(p, (mtime, mtime))
    return str(p)


def put(target, tmp_path, path: str, data: bytes, mtime: float = MTIME):
    return target.put(path, write(tmp_path, path, data, mtime), size=len(data), mtime=mtime)


def files(target, prefix: str = "") -> dict[str, int]:
    return {e.path: e.size for e in target.list(prefix) if not e.is_dir}


def test_put_then_stat_keeps_size_and_mtime(target, tmp_path):
    entry = put(target, tmp_path, "a/b/c.txt", b"hello")
    assert entry.size == 5
    st = target.stat("a/b/c.txt")
    assert st is not None and st.size == 5 and not st.is_dir
    assert abs(st.mtime - MTIME) <= max(target.features.mtime_precision, 1e-6)
    assert target.read("a/b/c.txt") == b"hello"


def test_stat_and_read_absent_return_none(target):
    assert target.stat("nope/never.txt") is None
    assert target.read("nope/never.txt") is None


def test_overwrite_replaces_content(target, tmp_path):
    put(target, tmp_path, "x.bin", b"old content here")
    put(target, tmp_path, "x.bin", b"new", mtime=MTIME + 10)
    assert target.read("x.bin") == b"new"
    st = target.stat("x.bin")
    assert st.size == 3 and abs(st.mtime - (MTIME + 10)) <= max(target.features.mtime_precision, 1e-6)


def test_empty_file(target, tmp_path):
    put(target, tmp_path, "empty", b"")
    assert target.stat("empty").size == 0
    assert target.read("empty") == b""


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_awkward_names_round_trip(target, tmp_path, name):
    data = name.encode("utf-8") * 3
    put(target, tmp_path, name, data)
    assert target.read(name) == data
    assert files(target)[name] == len(data)
    target.delete(name)
    assert target.stat(name) is None


def test_control_character_names_deleted_moved_and_removed_with_their_tree(target, tmp_path):
    """Each way a name leaves the target: a batch of deletes, a move of its directory, a
    tree removal (one such name among many made every DeleteObjects call fail)."""
    for d in ("batch", "moved", "tree"):
        for name in CONTROL_NAMES:
            put(target, tmp_path, f"{d}/{name}", name.encode("utf-8"))
    results = target.sync([SyncItem(f"batch/{name}", "absent") for name in CONTROL_NAMES])
    assert [r.error for r in results] == [None] * len(CONTROL_NAMES)
    target.move("moved", "there")
    target.delete("tree", tree=True)
    assert files(target) == {f"there/{name}": len(name.encode("utf-8")) for name in CONTROL_NAMES}
    assert target.read("there/a\x01b.txt") == b"a\x01b.txt"


def test_list_is_sorted_recursive_and_hides_own_area(target, tmp_path):
    for path in ["b", "a.b", "a/x", "a/y/z", "a-b", "A", "a0"]:
        put(target, tmp_path, path, path.encode())
    target.write_meta("heartbeat.json", b"{}")
    entries = list(target.list())
    keys = [entry_key(e) for e in entries]
    assert keys == sorted(keys)
    assert set(files(target)) == {"b", "a.b", "a/x", "a/y/z", "a-b", "A", "a0"}
    assert not any(e.path.startswith(".mirrord") for e in entries)


def test_list_prefix(target, tmp_path):
    for path in ["d/one", "d/sub/two", "dx/three", "e"]:
        put(target, tmp_path, path, b"1")
    assert set(files(target, "d")) == {"d/one", "d/sub/two"}


def test_delete_is_idempotent(target, tmp_path):
    put(target, tmp_path, "gone.txt", b"x")
    target.delete("gone.txt")
    target.delete("gone.txt")
    target.delete("never/was.txt")
    assert target.stat("gone.txt") is None


def test_delete_tree_removes_everything_below(target, tmp_path):
    for path in ["t/a", "t/b/c", "t/b/d/e", "tt/keep"]:
        put(target, tmp_path, path, b"1")
    target.delete("t", tree=True)
    assert files(target) == {"tt/keep": 1}


def test_delete_without_tree_leaves_a_directory_holding_files(target, tmp_path):
    """Target.delete's contract, in a batch as the shipper sends it: a delete that is no
    tree op removes a directory only when empty, and a non-empty one is left with no
    error, whatever its place in the batch (rsync's delete script answered such a
    directory, when it came last, with a failure of every delete of the batch). On a
    target without directories only the object at the name goes. The journal queues the
    tree removal when its record names anything below (mirrord.journal.claims)."""
    for path in ["d/x", "d/sub/y", "z"]:
        put(target, tmp_path, path, b"1")
    results = target.sync([SyncItem("z", "absent"), SyncItem("d", "absent")])
    assert [r.error for r in results] == [None, None]
    assert files(target) == {"d/x": 1, "d/sub/y": 1}
    target.delete("d")
    assert files(target) == {"d/x": 1, "d/sub/y": 1}


def test_move_file(target, tmp_path):
    assert target.features.server_side_move
    put(target, tmp_path, "from/f.txt", b"payload")
    target.move("from/f.txt", "to/g.txt")
    assert target.stat("from/f.txt") is None
    assert target.read("to/g.txt") == b"payload"


def test_move_directory_tree(target, tmp_path):
    assert target.features.server_side_move
    for path in ["old/a", "old/sub/b"]:
        put(target, tmp_path, path, path.encode())
    target.move("old", "new")
    assert files(target) == {"new/a": 5, "new/sub/b": 9}
    assert target.read("new/sub/b") == b"old/sub/b"


def test_move_directory_onto_a_directory(target, tmp_path):
    """What stood below the destination: replaced, unless the target says a directory's
    move merges (Features.move_merges: S3, where the record then keeps those paths)."""
    for path, data in [("old/a", b"moved a"), ("old/sub/b", b"moved b"), ("new/a", b"old a"),
                       ("new/x", b"stood there")]:
        put(target, tmp_path, path, data)
    target.move("old", "new")
    want = {"new/a": 7, "new/sub/b": 7}
    if target.features.move_merges:
        want["new/x"] = 11
    assert files(target) == want
    assert target.read("new/a") == b"moved a"


def test_move_missing_source_raises_not_found(target):
    assert target.features.server_side_move
    with pytest.raises(NotFound):
        target.move("not/here", "there")


@pytest.mark.parametrize("bad", ["../escape", "/abs/path", "a/../../b", ".mirrord/heartbeat.json", "a//b", ""])
def test_unsafe_paths_are_refused(target, tmp_path, bad):
    src = write(tmp_path, "ok", b"x")
    with pytest.raises(PermanentError):
        target.put(bad, src, size=1, mtime=MTIME)
    with pytest.raises(PermanentError):
        target.delete(bad)


def test_meta_round_trip(target):
    assert target.read_meta("heartbeat.json") is None
    payload = json.dumps({"time": "now"}).encode()
    target.write_meta("heartbeat.json", payload)
    target.write_meta("heartbeat.json", payload + b" ")
    assert target.read_meta("heartbeat.json") == payload + b" "


def test_meta_larger_than_its_limit_is_refused_not_read_whole(target):
    """A planted `.mirrord/heartbeat.json` of any size was read whole by the health
    service at every check; past paths.META_LIMIT (1 MiB) it is a PermanentError, and
    a file of exactly the limit is still read."""
    from mirrord.targets.paths import META_LIMIT
    target.write_meta("heartbeat.json", b"x" * META_LIMIT)
    assert target.read_meta("heartbeat.json") == b"x" * META_LIMIT
    target.write_meta("heartbeat.json", b"x" * (META_LIMIT + 1))
    with pytest.raises(PermanentError, match="more than"):
        target.read_meta("heartbeat.json")


def test_failed_put_leaves_nothing(target, tmp_path):
    with pytest.raises((PermanentError, Exception)):
        target.put("half.txt", str(tmp_path / "does-not-exist"), size=10, mtime=MTIME)
    assert target.stat("half.txt") is None
    assert files(target) == {}


def test_sync_batch_mixes_kinds_and_isolates_errors(target, tmp_path):
    put(target, tmp_path, "del/me", b"1")
    put(target, tmp_path, "tree/a/b", b"1")
    good = write(tmp_path, "good", b"good!")
    items = [
        SyncItem("new/file.txt", "file", good, 5, MTIME),
        SyncItem("del/me", "absent"),
        SyncItem("tree", "absent", tree=True),
        SyncItem("a dir", "dir", mtime=MTIME),
        SyncItem("broken.txt", "file", str(tmp_path / "missing"), 3, MTIME),
        SyncItem("also/good.txt", "file", good, 5, MTIME),
    ]
    results = target.sync(items)
    assert [r.item for r in results] == items
    errors = {r.item.path: r.error for r in results if r.error is not None}
    assert set(errors) <= {"broken.txt"}
    listed = files(target)
    assert listed.get("new/file.txt") == 5 and listed.get("also/good.txt") == 5
    assert "del/me" not in listed and "tree/a/b" not in listed
    if target.features.directories:
        assert any(e.path == "a dir" and e.is_dir for e in target.list())


def test_directories_when_supported(target, tmp_path):
    if not target.features.directories:
        target.mkdir("d")  # a no-op, must not fail
        assert files(target) == {}
        return
    target.mkdir("d/e")
    dirs = {e.path for e in target.list() if e.is_dir}
    assert {"d", "d/e"} <= dirs
    put(target, tmp_path, "d/e", b"file replaces dir")
    assert target.read("d/e") == b"file replaces dir"


def test_checksum_matches_local_digest_when_offered(target, tmp_path):
    src = write(tmp_path, "sum", b"checksum me" * 1000)
    target.put("sum", src, size=11000, mtime=MTIME)
    digest = target.checksum("sum")
    if digest is not None:
        assert digest == file_digest(src)


def test_larger_file(target, tmp_path):
    data = os.urandom(9 << 20)  # above the test S3 multipart threshold
    put(target, tmp_path, "big/blob.bin", data)
    assert target.stat("big/blob.bin").size == len(data)
    assert target.read("big/blob.bin") == data
