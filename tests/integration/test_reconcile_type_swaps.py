"""A reconcile repair that replaces an entry of the other type goes only with that entry's
delete (mirrord.type_swaps), on every real target: local, S3 (SeaweedFS), rsync (sshd).

A breaker's story: with the daemon stopped, `rm -rf big; echo x > big`, and
`[reconcile] max_delete = 5`. The pass said "refusing to delete 32 entries ... nothing
deleted", and shipped the file `big` over the directory: its files were gone from the
local and rsync mirrors. The dry run named nothing below `big/` and the real run counted
`deleted 0`. S3 has no directories: the object `big` and the keys below `big/` stand
side by side there, so its repair goes at once and only its deletes are refused.
"""

from __future__ import annotations

import shutil

import pytest

from mirrord.journal import Journal
from tests.integration.test_reconcile_targets import KINDS, Site, make_site

FILES = [f"big/sub/f{i}" for i in range(10)]


@pytest.fixture(params=KINDS)
def site(request, tmp_path) -> Site:
    return make_site(request.param, tmp_path, request)


def _tree_made_a_file(site) -> None:
    for rel in FILES:
        site.write(rel, rel.encode())
    site.write("top", b"top")
    assert site.reconcile()[0] == 0
    shutil.rmtree(site.src / "big")
    site.write("big", b"a file now")


def _still_a_tree(site) -> bool:
    if site.kind == "s3":
        return all(site.remote.exists(rel) for rel in FILES)
    return all(site.remote.exists(rel) for rel in FILES) and (site.remote.root / "big").is_dir()


def test_a_file_over_a_directory_waits_for_the_directorys_delete(site):
    _tree_made_a_file(site)
    site.configure(max_delete="5")
    rc, t = site.reconcile()
    assert rc == 1 and t["delete_refusal"], t
    assert _still_a_tree(site), "the refused deletes' files were removed by the put"
    if site.kind == "s3":
        assert site.remote.exists("big")          # beside the keys below big/: no swap
    else:
        assert any("1 repairs not sent (first: 'big')" in e for e in t["errors"]), t["errors"]
    site.configure()
    _rc, dry = site.reconcile("--dry-run")        # exit 1: differences found
    if site.kind == "s3":
        assert sorted(dry["would_delete"]) == sorted(FILES)
    else:
        assert dry["would_delete"] == ["big/"] and dry["deleted"] == 12, dry   # 10 + 2 dirs
        assert dry["would_send"] == ["big"]
    rc, t = site.reconcile()
    assert rc == 0 and t["deleted"] == (10 if site.kind == "s3" else 12), t
    site.assert_mirrored()


def test_a_directory_over_a_file_waits_for_the_files_delete(site):
    site.write("thing", b"a file")
    site.write("top", b"top")
    assert site.reconcile()[0] == 0
    (site.src / "thing").unlink()
    site.write("thing/a", b"A")
    site.write("thing/deep/b", b"B")
    rc, t = site.reconcile("--no-delete")
    if site.kind == "s3":
        assert rc == 0 and site.remote.exists("thing") and site.remote.exists("thing/a")
    else:
        assert rc == 1 and any("repairs not sent (first: 'thing" in e for e in t["errors"]), t
        assert (site.remote.root / "thing").is_file(), "the kept file was replaced"
        assert not site.remote.exists("thing/a")
    rc, t = site.reconcile()
    assert rc == 0 and t["deleted"] == 1, t
    site.assert_mirrored()


def test_a_held_source_keeps_the_directory_and_the_pass_ends(site):
    """A source whose deletes are held (an alarm, or a capped comparison): the pass deletes
    nothing, sends no repair that would replace the directory, and ends (a breaker's
    reconcile of a held source waited 9 minutes for a put parked behind the held removal)."""
    _tree_made_a_file(site)
    journal = Journal(site.base / "state" / "journal.db", {"up": ("t",)})
    try:
        assert journal.hold_deletes("up", reason="mass-change alarm: test")
    finally:
        journal.close()
    rc, t = site.reconcile()
    assert rc == 1 and "held" in " ".join(t["delete_refusal"]), t
    assert _still_a_tree(site)
