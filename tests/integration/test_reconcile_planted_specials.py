"""Symlinks, FIFOs and sockets planted in a local mirror or on a mirror host are extras a
reconcile removes (or replaces, where the source has a file or directory at that name),
on the real local and rsync (sshd) targets, with and without keep_deleted.

A helper's trial: `ln -s / mir/rootlink; ln -s /etc/passwd mir/pw; mkfifo mir/fifo`, then
every pass said `extra 0`, in sync, exit 0, and all three stayed: the target listings
yielded regular files and directories only. After a failover the web server serves that
tree, so a planted `rootlink -> /` survived every reconcile. Nothing outside the root may
change while they are removed (never followed)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket

import pytest

from tests.integration.test_reconcile_targets import Site, make_site


def snapshot(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(params=["local", "rsync"])
def site(request, tmp_path) -> Site:
    return make_site(request.param, tmp_path, request)


def plant(site: Site, outside) -> None:
    root = site.remote.root
    os.symlink("/", root / "rootlink")
    os.symlink(outside, root / "dir" / "pw")
    os.mkfifo(root / "fifo")
    os.mkfifo(root / "dir" / "sub-fifo")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "sock"))
    os.symlink(outside.parent, root / "was-a-dir")     # the source has a directory here
    os.symlink(outside, root / "a.txt.link")
    (root / "file.txt").unlink()
    os.symlink(outside, root / "file.txt")            # the source has a file here


@pytest.mark.parametrize("keep", [False, True], ids=["plain", "keep_deleted"])
def test_planted_specials_are_extras_and_go(site, tmp_path, keep):
    outside = tmp_path / "outside" / "victim"
    outside.parent.mkdir()
    outside.write_bytes(b"not the mirror's")
    site.write("dir/b.txt", b"bravo")
    site.write("file.txt", b"a file")
    site.write("was-a-dir/inner.txt", b"inner")
    if keep:
        site.target_lines += "keep_deleted = 7d\n"
        site.configure()
    assert site.reconcile()[0] == 0
    shutil.rmtree(site.remote.root / "was-a-dir")
    plant(site, outside)
    before = (snapshot(outside), sorted(os.listdir(outside.parent)))
    rc, dry = site.reconcile("--dry-run")
    assert rc == 1 and dry["extra"] >= 6, dry
    rc, t = site.reconcile()
    assert rc == 0, t
    root = site.remote.root
    left = [p for p in ("rootlink", "dir/pw", "fifo", "dir/sub-fifo", "sock", "a.txt.link")
            if os.path.lexists(root / p)]
    assert left == []
    assert not (root / "file.txt").is_symlink() and (root / "file.txt").read_bytes() == b"a file"
    assert (root / "was-a-dir").is_dir() and not (root / "was-a-dir").is_symlink()
    assert (root / "was-a-dir" / "inner.txt").read_bytes() == b"inner"
    assert (snapshot(outside), sorted(os.listdir(outside.parent))) == before
    assert os.path.isdir("/etc") and os.path.exists("/etc/passwd")
    # none is kept as a version of a file (keep_deleted): never restored by an undelete
    kept = [os.path.join(d, n) for d, dirs, files in os.walk(root / ".mirrord")
            for n in files + dirs if not os.path.isdir(os.path.join(d, n))
            and not os.path.isfile(os.path.join(d, n))]
    assert kept == []
    rc, t = site.reconcile()
    assert rc == 0 and (t["missing"], t["changed"], t["extra"]) == (0, 0, 0), t
    site.assert_mirrored()
