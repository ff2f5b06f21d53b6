"""An extra target file at a path where the source holds something that is not a file.

The pass proposed no delete for an extra whose path existed at the source in any form
(os.path.lexists), taking it for a file created during the pass. A symlink there (never
mirrored) left the target's old file for ever, and on S3, which keeps an object `b`
beside `b/sub/y`, so did a directory; every pass counted the extra and said in sync.
Real targets: local, rsync over the test sshd, S3 on the test SeaweedFS.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.test_reconcile_targets import KINDS, make_site


@pytest.mark.parametrize("kind", KINDS)
def test_an_extra_file_shadowed_by_a_symlink_or_a_directory_is_removed(kind, tmp_path, request):
    site = make_site(kind, tmp_path, request)
    site.write("f", b"one")
    site.write("b/sub/y", b"y")
    os.symlink("f", site.src / "link")
    os.mkfifo(site.src / "pipe")
    site.remote.write("link", b"the file the symlink replaced")
    site.remote.write("pipe", b"the file the fifo replaced")
    if kind == "s3":
        site.remote.write("b", b"the file the directory replaced")   # beside b/sub/y
    rc, t = site.reconcile()
    assert rc == 0, t
    assert site.target_files() == {"f": b"one", "b/sub/y": b"y"}
    rc, t = site.reconcile("--dry-run")
    assert rc == 0 and t["extra"] == 0, t


def test_a_directory_extra_where_the_source_holds_a_file_is_replaced_once(tmp_path, request):
    """The directory's removal is a delete of the pass (counted, capped, named by a dry run:
    mirrord.type_swaps), and the file's put goes with it, after it: one op of the journal
    (a put that removes the tree first), not a put then a tree delete that would remove the
    file just sent and send it again."""
    site = make_site("local", tmp_path, request)
    site.write("a", b"file a")
    site.remote.write("a/sub/x", b"old")
    _rc, dry = site.reconcile("--dry-run")
    assert (dry["would_delete"], dry["would_send"], dry["deleted"]) == (["a/"], ["a"], 3), dry
    rc, t = site.reconcile()
    assert rc == 0, t
    assert (t["missing"], t["extra"], t["deleted"]) == (1, 3, 3)   # a/, a/sub/, a/sub/x
    assert site.target_files() == {"a": b"file a"}
    rows = site.open_target().list()
    assert [(e.path, e.is_dir) for e in rows if not e.path.startswith(".mirrord")] == \
        [("a", False)]


def test_a_name_s3_cannot_hold_does_not_hold_back_the_deletes(tmp_path, request):
    """A source file whose name is not UTF-8 was proposed as a repair in every pass, failed
    (S3 keys are UTF-8), and a failed repair refuses the pass's deletes: every extra on the
    bucket stayed for ever, although the README says such a name is reported for that
    file alone. Now it is one error of the pass, and the deletes go."""
    site = make_site("s3", tmp_path, request)
    site.write("f", b"one")
    (site.src / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"a Latin-1 name")
    site.remote.write("stray", b"deleted at the source while the daemon was down")
    rc, t = site.reconcile()
    assert rc == 1 and t["deleted"] == 1 and not t["delete_refusal"], t
    assert len(t["errors"]) == 1 and "not valid UTF-8" in t["errors"][0], t
    assert site.target_files() == {"f": b"one"}


def test_a_source_holding_mirrord_s_own_area_does_not_hold_back_the_deletes(tmp_path, request):
    """A former mirror made a source (failback) holds `.mirrord/heartbeat.json` at its root:
    no target may hold that path (paths.check_relpath), so its repair failed in every pass
    and kept every extra. Now it is an error of the pass; the deletes go."""
    site = make_site("local", tmp_path, request)
    site.write("a", b"alpha")
    site.write(".mirrord/heartbeat.json", b"{}")
    site.remote.write("stray", b"deleted at the source")
    rc, t = site.reconcile()
    assert rc == 1 and t["deleted"] == 1 and not t["delete_refusal"], t
    assert all("mirrord's own area" in e for e in t["errors"]) and t["errors"], t
    assert not site.remote.exists("stray") and site.remote.exists("a")
