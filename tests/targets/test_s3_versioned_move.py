"""move() on a versioned bucket (mirrord/targets/s3/vmove.py) against a real SeaweedFS.

A rename leaves no version of the old name in the trash, a user's delete still does, and
a move cut short at each step (kill -9: the step raises here, the journal then runs the
move again) ends, when run again, with nothing listed and nothing lost. Also the S3
target's rule that a file's move carries only its own key, never the keys a directory
made at the old name put below it (both trash modes).
"""

from __future__ import annotations

import pytest

from mirrord.errors import NotFound
from mirrord.targets.s3 import deletes, vmove
from mirrord.trash.model import DELETED, OVERWRITTEN
from tests.targets.test_s3_trash import NS, put, s3, s3_on, vs3  # noqa: F401 (s3, vs3: fixtures)



class Killed(Exception):
    """Stands for kill -9 at that step: nothing after it runs."""


def versions(t, path: str) -> list[tuple[str, bool]]:
    """('v' a version / 'dm' a delete marker, IsLatest) of exactly `path`, newest first."""
    resp = t.client.list_object_versions(Bucket=t.bucket, Prefix=t.root + path)
    rows = [(v["LastModified"], "v", v["IsLatest"]) for v in resp.get("Versions", ())
            if v["Key"] == t.root + path]
    rows += [(v["LastModified"], "dm", v["IsLatest"]) for v in resp.get("DeleteMarkers", ())
             if v["Key"] == t.root + path]
    return [(kind, latest) for _, kind, latest in sorted(rows, key=lambda r: (r[0], r[2]),
                                                         reverse=True)]


def listed(t) -> list[tuple[str, str]]:
    return sorted((k.path, k.why) for k in t.trash_list())


def test_a_file_move_leaves_no_kept_version(vs3, tmp_path):
    put(vs3, tmp_path, "a.jpg", b"photo", mode=0o600)
    vs3.move("a.jpg", "b.jpg")
    assert vs3.read("b.jpg") == b"photo" and vs3.stat("a.jpg") is None
    entry = vs3.stat("b.jpg")
    assert (entry.mtime_ns, entry.mode) == (NS, 0o600)
    assert listed(vs3) == []
    assert [kind for kind, _ in versions(vs3, "a.jpg")] == ["dm"]   # no version left
    assert versions(vs3, "b.jpg") == [("v", True)]


def test_a_directory_move_leaves_no_kept_version(vs3, tmp_path):
    for rel in ("d/x.jpg", "d/sub/y.jpg", "d/sub/z.jpg"):
        put(vs3, tmp_path, rel, rel.encode())
    vs3.move("d", "e")
    assert {e.path for e in vs3.list()} == {"e/x.jpg", "e/sub/y.jpg", "e/sub/z.jpg"}
    assert listed(vs3) == []


def test_a_users_delete_and_overwrite_stay_kept_beside_moves(vs3, tmp_path):
    put(vs3, tmp_path, "keep/old.jpg", b"v1")
    put(vs3, tmp_path, "keep/old.jpg", b"v2", ns=NS + 1)     # an overwrite: v1 is kept
    put(vs3, tmp_path, "d/gone.jpg", b"deleted by the user")
    vs3.delete("d/gone.jpg")
    put(vs3, tmp_path, "d/stays.jpg", b"moved")
    vs3.move("d", "e")
    vs3.move("keep/old.jpg", "keep/new.jpg")
    # the overwritten v1 stays kept (its change now dated by the rename's delete marker:
    # the version between them, the moved v2, is gone); the user's delete stays kept
    assert listed(vs3) == [("d/gone.jpg", DELETED), ("keep/old.jpg", DELETED)]
    [v1] = [k for k in vs3.trash_list() if k.path == "keep/old.jpg"]
    out = tmp_path / "v1"
    vs3.trash_fetch(v1, str(out))
    assert out.read_bytes() == b"v1" and vs3.read("keep/new.jpg") == b"v2"


def test_killed_after_the_delete_marker_the_next_try_finishes(vs3, tmp_path, monkeypatch):
    put(vs3, tmp_path, "a.jpg", b"photo")
    for rel in ("d/x.jpg", "d/y.jpg"):
        put(vs3, tmp_path, rel, rel.encode())
    with monkeypatch.context() as m:
        m.setattr(vmove, "drop", _killed)
        for src, dst in (("a.jpg", "b.jpg"), ("d", "e")):
            with pytest.raises(Killed):
                vs3.move(src, dst)
    # between the two steps: an extra kept version, never a lost one
    assert listed(vs3) == [("a.jpg", DELETED), ("d/x.jpg", DELETED), ("d/y.jpg", DELETED)]
    vs3.delete("a.jpg")             # a second delete marker on top changes nothing
    vs3.move("a.jpg", "b.jpg")      # the journal runs the moves again
    vs3.move("d", "e")
    assert listed(vs3) == []
    assert vs3.read("b.jpg") == b"photo" and vs3.read("e/y.jpg") == b"d/y.jpg"
    with pytest.raises(NotFound):   # done: a third try finds nothing left to do
        vs3.move("a.jpg", "b.jpg")


def test_killed_before_the_delete_marker_the_next_try_copies_nothing(vs3, tmp_path,
                                                                     monkeypatch):
    put(vs3, tmp_path, "a.jpg", b"photo")
    put(vs3, tmp_path, "d/x.jpg", b"x")
    with monkeypatch.context() as m:
        m.setattr(deletes, "delete_keys", _killed)
        for src, dst in (("a.jpg", "b.jpg"), ("d", "e")):
            with pytest.raises(Killed):
                vs3.move(src, dst)
    assert vs3.read("a.jpg") == b"photo" and vs3.read("b.jpg") == b"photo"
    vs3.move("a.jpg", "b.jpg")
    vs3.move("d", "e")
    assert versions(vs3, "b.jpg") == [("v", True)], "copied once: no 'overwritten' version"
    assert versions(vs3, "e/x.jpg") == [("v", True)]
    assert listed(vs3) == []


def test_a_deleted_version_the_destination_does_not_hold_is_not_taken(vs3, tmp_path):
    """The next try finishes only versions whose bytes the destination holds: a user's
    delete below the old name, other bytes at the new name, stays kept."""
    put(vs3, tmp_path, "d/x.jpg", b"the user's file")
    vs3.delete("d/x.jpg")
    put(vs3, tmp_path, "e/x.jpg", b"something else")
    with pytest.raises(NotFound):
        vs3.move("d", "e")
    assert listed(vs3) == [("d/x.jpg", DELETED)]


def test_an_overwrite_at_the_destination_stays_kept(vs3, tmp_path):
    put(vs3, tmp_path, "a.jpg", b"new photo")
    put(vs3, tmp_path, "b.jpg", b"old photo")
    vs3.move("a.jpg", "b.jpg")            # a rename over b.jpg: the user lost its bytes
    assert listed(vs3) == [("b.jpg", OVERWRITTEN)]


@pytest.mark.parametrize("mode", ["copy", "versioning"])
def test_a_file_move_carries_only_its_own_key(mode, s3, vs3, tmp_path):
    """`mv f f.bak; mkdir f; echo > f/inner.jpg` with f/inner.jpg sent before the move:
    the move of the file f carried f/inner.jpg along to f.bak/inner.jpg."""
    t = s3 if mode == "copy" else vs3
    assert t.trash_mode() == mode
    put(t, tmp_path, "f", b"a file")
    put(t, tmp_path, "f/inner.jpg", b"the new directory's file")
    t.move("f", "f.bak")
    assert {e.path for e in t.list()} == {"f.bak", "f/inner.jpg"}


@pytest.mark.parametrize("mode", ["copy", "versioning"])
def test_a_directory_moved_over_a_file_replaces_it(mode, s3, vs3, tmp_path):  # noqa: F811
    """`mv f f.bak; mv dir-f f` with the first rename read as a rename back (fanotify:
    shipped as it stands, nothing deleted at f) reaches the target as a directory move
    onto the file f: rename(2) replaces it, and so must the move, or the object f stayed
    beside f/inner.jpg for good (tests/e2e/test_versioned_moves_keep_nothing.py)."""
    t = s3 if mode == "copy" else vs3
    put(t, tmp_path, "f", b"a file")
    put(t, tmp_path, "dir-f/inner.jpg", b"the directory's file")
    t.move("dir-f", "f")
    assert {e.path for e in t.list()} == {"f/inner.jpg"}
    assert t.read("f") is None and t.read("f/inner.jpg") == b"the directory's file"
    put(t, tmp_path, "g", b"a file moved back")
    t.move("g", "g2")                     # a file's move leaves the object it moved to
    assert t.read("g2") == b"a file moved back"


def _killed(*_args, **_kwargs):
    raise Killed
