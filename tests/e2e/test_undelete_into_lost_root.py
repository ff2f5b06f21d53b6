"""`mirrord undelete --to-source` never writes into a source root that is no uploads volume.

Found by a breaker: 300 files on a tmpfs root, keep_deleted on, one file deleted, the
tmpfs lazily unmounted (status: LOST); `undelete --to-source` of the deleted file wrote
it into the bare mount point and exited 0. One file there made the root "back", and the
daemon's comparison deleted on every target what the root lacked (902 of 903 files; the
same at the next start with the daemon stopped). Now the restore is refused, exit 1,
naming the root; nothing is written, and the mirror keeps every file. The real `mirrord
run` on a local target, with the daemon running and stopped (mirrord.trash.source_root).
A root emptied by a user (`rm -rf`) while the daemon watches it is what undelete exists
for: restored as before.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Mirrord, files_below
from tests.reliability.conftest import poll

FILES = 40



def _mirrored(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in files_below(root)
            if ".mirrord" not in p.relative_to(root).parts}


@pytest.mark.parametrize("daemon", ["running", "stopped"])
def test_undelete_to_source_refuses_an_unmounted_root(tmp_path, daemon):
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    src.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(src)], check=True)
    mounted = True
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\nheartbeat_interval = 200ms\n"
                   f"[source:up]\npath = {src}\ntargets = t\n"
                   f"[target:t]\ntype = local\npath = {mirror}\nkeep_deleted = 7d\n"
                   f"[reconcile]\nevery = off\n")
    d = Mirrord(cfg, tmp_path / "mirrord.log")
    try:
        (src / "site").mkdir()
        for i in range(FILES):
            (src / "site" / f"f{i}.jpg").write_bytes(b"x%d" % i)
        d.start()
        poll(lambda: len(_mirrored(mirror)) == FILES, what="the tree mirrored")
        (src / "site" / "f1.jpg").unlink()
        poll(lambda: len(_mirrored(mirror)) == FILES - 1, what="the delete mirrored (kept)")
        subprocess.run(["umount", "-l", str(src)], check=True)
        mounted = False
        poll(lambda: (d.status().get("daemon") or {}).get("sources", {}).get("up", {}).get("state")
             == "lost", what="the root seen lost")
        if daemon == "stopped":
            assert d.stop() == 0
        res = d.cli("undelete", "--to-source", "site/f1.jpg", check=False)
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert ("reports the source root" in out and "lost" in out if daemon == "running"
                else "is empty while the state database records files" in out), out
        assert not any(src.iterdir()), "written into the bare mount point"
        if daemon == "stopped":
            d.start()   # its start must not take the mirror down either
        time.sleep(3)   # more than a root look (1 s) and a comparison
        assert len(_mirrored(mirror)) == FILES - 1, sorted(_mirrored(mirror))[:5]
    finally:
        d.stop()
        if mounted:
            subprocess.run(["umount", "-l", str(src)], check=False)


def test_a_root_emptied_while_watched_is_restored(tmp_path):
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    (src / "site").mkdir(parents=True)
    (src / "site" / "a.jpg").write_bytes(b"a")
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\nheartbeat_interval = 200ms\n"
                   f"[source:up]\npath = {src}\ntargets = t\n"
                   f"[target:t]\ntype = local\npath = {mirror}\nkeep_deleted = 7d\n")
    d = Mirrord(cfg, tmp_path / "mirrord.log")
    d.start()
    try:
        poll(lambda: _mirrored(mirror) == {"site/a.jpg"}, what="mirrored")
        subprocess.run(["rm", "-rf", str(src / "site")], check=True)   # the root is empty now
        poll(lambda: not _mirrored(mirror), what="the delete mirrored (kept)")
        res = d.cli("undelete", "--to-source", "site/a.jpg", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert (src / "site" / "a.jpg").read_bytes() == b"a"
        poll(lambda: _mirrored(mirror) == {"site/a.jpg"}, what="restored and mirrored again")
    finally:
        assert d.stop() == 0


def test_no_daemon_ever_run_an_unmounted_root_takes_nothing_unless_forced(tmp_path):
    """Reconcile-only use (no daemon, no status document): a tmpfs root unmounted, the
    undelete wrote into the bare mount point, and the next reconcile deleted 29 of 30
    files as extras (a breaker). The state database's record of what was shipped from
    the source says the empty root is not the volume; --force writes all the same."""
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    src.mkdir()
    cfg = tmp_path / "mirrord.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n"
                   f"[source:up]\npath = {src}\ntargets = t\n"
                   f"[target:t]\ntype = local\npath = {mirror}\nkeep_deleted = 7d\n")
    d = Mirrord(cfg, tmp_path / "mirrord.log")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(src)], check=True)
    try:
        for i in range(10):
            (src / f"f{i}.jpg").write_bytes(b"x%d" % i)
        d.cli("reconcile")
        (src / "f1.jpg").unlink()
        d.cli("reconcile")   # the delete, kept
    finally:
        subprocess.run(["umount", "-l", str(src)], check=True)
    res = d.cli("undelete", "--to-source", "f1.jpg", check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 1 and "is empty while the state database records files" in out, out
    assert not any(src.iterdir())
    res = d.cli("undelete", "--to-source", "--force", "f1.jpg", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (src / "f1.jpg").read_bytes() == b"x1"
