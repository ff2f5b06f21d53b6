"""`mirrord undelete --to-source` never overwrites a newer upload without --force, also one
copied in with its old mtime kept (rsync -t, cp -p, tar -x): its ctime, which no one can
set back, says it was put there after the delete. Before, only the mtime was looked at,
and such a file was replaced by the old version (exit 0, `written`)."""

from __future__ import annotations

import os
import subprocess

from tests.e2e.helpers import MIRRORD

NEW_UPLOAD = b"a newer upload, copied in with its mtime kept"


def run(ini, *args):
    return subprocess.run([MIRRORD, "-c", str(ini), *args], check=False, capture_output=True,
                          text=True, timeout=120)


def test_a_newer_upload_with_an_old_mtime_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n\n[source:up]\n"
                   f"path = {src}\ntargets = t\n\n[target:t]\ntype = local\n"
                   f"path = {tmp_path / 'mirror'}\nfsync = no\nkeep_deleted = 1d\n")
    (src / "a.jpg").write_bytes(b"the deleted version")
    (src / "other.jpg").write_bytes(b"stays")
    assert run(ini, "reconcile").returncode == 0
    (src / "a.jpg").unlink()
    assert run(ini, "reconcile").returncode == 0           # deleted on the target, kept
    staged = tmp_path / "upload.jpg"
    staged.write_bytes(NEW_UPLOAD)
    os.utime(staged, ns=(1_500_000_000_000_000_000,) * 2)   # an mtime from 2017
    os.link(staged, src / "a.jpg")                          # put in place after the delete

    res = run(ini, "undelete", "--to-source", "a.jpg")
    assert res.returncode == 1 and "refused: " in res.stdout, res.stdout + res.stderr
    assert (src / "a.jpg").read_bytes() == NEW_UPLOAD
    res = run(ini, "undelete", "--to-source", "--force", "a.jpg")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (src / "a.jpg").read_bytes() == b"the deleted version"
