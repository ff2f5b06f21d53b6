"""Walking a source tree: byte order with directories as 'name/', streaming, no symlinks
followed, excluded subtrees skipped, unreadable directories recorded (never raised)."""

from __future__ import annotations

import os
from pathlib import Path

from mirrord.targets.model import Entry
from mirrord.treewalk import WalkErrors, entry_key, file_digest, path_key, walk


def make(root: Path, files: list[str], dirs: list[str] = ()) -> None:
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(f.encode())


def test_the_walk_is_in_entry_key_order(tmp_path):
    names = ["a-b", "a.c", "a/x", "a/y/z", "a0", "a!", "b", "a/-", "a/.h", "é", "a b", "Z"]
    make(tmp_path, names, ["empty"])
    entries = list(walk(str(tmp_path)))
    keys = [entry_key(e) for e in entries]
    assert keys == sorted(keys)
    assert {e.path for e in entries if not e.is_dir} == set(names)
    assert {e.path for e in entries if e.is_dir} == {"a", "a/y", "empty"}


def test_entries_carry_size_and_exact_mtime(tmp_path):
    make(tmp_path, ["f"])
    os.utime(tmp_path / "f", ns=(1_500_000_000_123_456_789, 1_500_000_000_123_456_789))
    (e,) = list(walk(str(tmp_path)))
    assert (e.path, e.size, e.mtime_ns, e.is_dir) == ("f", 1, 1_500_000_000_123_456_789, False)


def test_entries_carry_the_permission_bits_of_files_and_directories(tmp_path):
    make(tmp_path, ["d/f"])
    os.chmod(tmp_path / "d" / "f", 0o4640)
    os.chmod(tmp_path / "d", 0o2750)
    got = {e.path: e.mode for e in walk(str(tmp_path))}
    assert got == {"d": 0o2750, "d/f": 0o4640}


def test_without_directories_and_with_a_prefix(tmp_path):
    make(tmp_path, ["d/x", "y"])
    assert [e.path for e in walk(str(tmp_path), include_dirs=False)] == ["d/x", "y"]
    assert [e.path for e in walk(str(tmp_path / "d"), prefix="sub/d")] == ["sub/d/x"]


def test_symlinks_and_special_files_are_not_walked(tmp_path):
    outside = tmp_path / "outside"
    make(outside, ["secret"])
    src = tmp_path / "src"
    make(src, ["real"])
    (src / "dirlink").symlink_to(outside)
    (src / "filelink").symlink_to(outside / "secret")
    os.mkfifo(src / "fifo")
    assert [e.path for e in walk(str(src))] == ["real"]


def test_excluded_entries_are_skipped_with_everything_below(tmp_path):
    make(tmp_path, ["cache/a", "cache/b/c", "keep/x.tmp", "keep/y"])
    got = [e.path for e in walk(str(tmp_path),
                                excluded=lambda p: p == "cache" or p.endswith(".tmp"))]
    assert got == ["keep", "keep/y"]


def test_unreadable_or_missing_directories_are_recorded_not_raised(tmp_path):
    errors = WalkErrors([])
    assert list(walk(str(tmp_path / "missing"), errors=errors)) == []
    assert errors and errors.unreadable[0][0] == "."
    assert not WalkErrors([])


def test_non_utf8_names_round_trip(tmp_path):
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9"
    with open(raw, "wb") as fh:
        fh.write(b"x")
    (e,) = list(walk(str(tmp_path)))
    assert path_key(e.path) == b"caf\xe9"
    assert entry_key(Entry("d", 0, 0, is_dir=True)) == b"d/"


def test_file_digest_is_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert file_digest(str(tmp_path / "f")) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert file_digest(str(tmp_path / "f"), chunk=1) == file_digest(os.fsencode(str(tmp_path / "f")))


def test_a_directory_swapped_for_a_symlink_during_the_walk_is_not_followed(tmp_path):
    """Each level is opened with O_NOFOLLOW relative to its parent: a directory replaced
    by a symlink between listing and descending is skipped, never walked through."""
    outside = tmp_path / "outside"
    make(outside, ["secret"])
    root = tmp_path / "root"
    make(root, ["a/f", "b/g"])
    seen = []
    for entry in walk(str(root), errors=WalkErrors([])):
        seen.append(entry.path)
        if entry.path == "a/f":   # 'b' was listed and is about to be stat'ed and opened
            os.rename(root / "b", tmp_path / "b-moved")
            os.symlink(outside, root / "b")
    assert "b/secret" not in seen and not any(p.startswith("b/") for p in seen)


def test_an_abandoned_walk_closes_its_directories(tmp_path):
    make(tmp_path / "r", [f"d{i}/e/f" for i in range(5)])
    before = len(os.listdir("/proc/self/fd"))
    it = walk(str(tmp_path / "r"))
    next(it), next(it), next(it)
    it.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_below_walks_one_subtree_with_full_paths(tmp_path):
    make(tmp_path, ["a/x", "a/s/y", "ab", "b/z"])
    got = [(e.path, e.is_dir) for e in walk(str(tmp_path), below="a")]
    assert got == [("a/s", True), ("a/s/y", False), ("a/x", False)]


def test_below_never_follows_a_symlink_on_the_way(tmp_path):
    make(tmp_path / "outside", ["secret"])
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "root" / "link")
    errors = WalkErrors([])
    assert list(walk(str(tmp_path / "root"), below="link", errors=errors)) == []
    assert [w for w, _why in errors.unreadable] == ["link"]


def test_a_missing_or_unsafe_below_is_unreadable_not_raised(tmp_path):
    errors = WalkErrors([])
    assert list(walk(str(tmp_path), below="nope/x", errors=errors)) == []
    assert list(walk(str(tmp_path), below="../etc", errors=errors)) == []
    assert [w for w, _why in errors.unreadable] == ["nope/x", "../etc"]
