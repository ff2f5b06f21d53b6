"""A file's path is user data, shown as it is named: the output redaction that masks
credentials in messages (mirrord/cli/output.py) must not rewrite it. Found by a breaker:
files named `password=abc123.jpg`, `x --token 12345.jpg` were listed by `mirrord trash`
(text and --json) as `password=***`, `x --token ***`, and `undelete` given what trash
printed found nothing. A credential mirrord read is still masked everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MIRRORD = Path(sys.executable).with_name("mirrord")
NAMES = ["password=abc123.jpg", "x --token 12345.jpg", "Authorization: Bearer abcdef.txt",
         "API_TOKEN=hello.txt"]


def mirrord(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MIRRORD), "-c", str(cfg), *args], capture_output=True,
                          text=True, timeout=120)


def test_kept_paths_are_listed_and_restored_as_named(tmp_path):
    src, tgt = tmp_path / "src", tmp_path / "tgt"
    src.mkdir()
    (src / "stays.jpg").write_text("a source never emptied (the empty-source guard)\n")
    for name in NAMES:
        (src / name).write_text(f"bytes of {name}\n")
    cfg = tmp_path / "m.ini"
    cfg.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n"
                   f"[source:up]\npath = {src}\ntargets = t\n"
                   f"[target:t]\ntype = local\npath = {tgt}\nkeep_deleted = 1d\n"
                   "[reconcile]\nat_start = no\n")
    cfg.chmod(0o600)
    assert mirrord(cfg, "reconcile").returncode == 0
    for name in NAMES:
        (src / name).unlink()
    assert mirrord(cfg, "reconcile").returncode == 0
    listed = mirrord(cfg, "trash")
    assert listed.returncode == 0, listed.stderr
    for name in NAMES:
        assert name in listed.stdout, listed.stdout
    doc = json.loads(mirrord(cfg, "trash", "--json").stdout)
    assert sorted(e["path"] for e in doc["targets"]["t"]["entries"]) == sorted(NAMES)
    for name in NAMES:
        shown = mirrord(cfg, "undelete", "--dry-run", name)
        assert shown.returncode == 0 and name in shown.stdout, (name, shown.stdout, shown.stderr)
    done = mirrord(cfg, "undelete", NAMES[0])
    assert done.returncode == 0, done.stderr
    assert (tgt / NAMES[0]).read_text() == f"bytes of {NAMES[0]}\n"
