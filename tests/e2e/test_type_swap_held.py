"""A directory replaced by a file while the daemon was stopped, and the comparison refuses or
holds its removal: no target loses the directory's files to the file's put (mirrord.type_swaps).

A breaker's story, through the real daemon and command on the three real targets: with
`max_delete = 5` (or the source's deletes held by the mass-change alarm), `rm -rf big;
echo x > big` while stopped. The comparison at start and `mirrord reconcile` said nothing
would be deleted, and the put of `big` removed the 30 files below it on the local and
rsync mirrors; `mirrord reconcile` of the held source with the daemon running never ended
(its put waited behind the held removal). Once the operator resumes the deletes, every
target ends exact.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from tests.e2e.helpers import MIRRORD, Mirrord, open_targets, wait_converged, write_config
from tests.reliability.conftest import poll

FILES = [f"big/sub/f{i}" for i in range(30)]


def _setup(tmp_path, seaweedfs, sshd, extra_source: str):
    cfg = write_config(tmp_path, seaweedfs, sshd, exclude="*.tmp")
    text = cfg.read_text().replace("[source:uploads]\n", "[source:uploads]\n" + extra_source)
    cfg.write_text(text + "\n[reconcile]\nevery = off\nmax_delete = 5\n")
    src = tmp_path / "src"
    for rel in FILES:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    (src / "top").write_text("top")
    return cfg, src


def _drained(d: Mirrord) -> bool:
    return all(t["pending"] == 0 for t in d.status()["targets"].values())


def _tree_kept(cfg) -> None:
    """Every target still holds the 30 files below big/ (S3 beside the object `big`)."""
    targets = open_targets(cfg)
    try:
        for name, t in targets.items():
            have = {e.path for e in t.list() if not e.is_dir}
            assert set(FILES) <= have, (name, sorted(set(FILES) - have)[:5])
    finally:
        for t in targets.values():
            t.close()


def _exact(cfg, src) -> None:
    targets = open_targets(cfg)
    try:
        for t in targets.values():
            wait_converged(src, t, excluded=lambda p: p.endswith(".tmp"))
    finally:
        for t in targets.values():
            t.close()


def test_a_capped_comparison_at_start_keeps_the_directory_until_resumed(tmp_path, seaweedfs,
                                                                         sshd):
    cfg, src = _setup(tmp_path, seaweedfs, sshd, "")
    d = Mirrord(cfg, tmp_path / "d.log").start()
    try:
        poll(lambda: _drained(d), what="first copy shipped", timeout=60)
        _exact(cfg, src)
        d.stop()
        shutil.rmtree(src / "big")
        (src / "big").write_text("a file now")
        d.start()
        poll(lambda: d.status()["daemon"]["sources"]["uploads"]["deletes_held"],
             what="the start's comparison holds the deletes", timeout=60)
        time.sleep(2)       # what the start queued has had its time to ship
        poll(lambda: _drained(d), what="drained", timeout=60)
        _tree_kept(cfg)
        d.cli("resume-deletes", "--source", "uploads")
        _exact(cfg, src)
    finally:
        d.stop()


def test_reconcile_of_a_held_source_ends_and_keeps_the_directory(tmp_path, seaweedfs, sshd):
    cfg, src = _setup(tmp_path, seaweedfs, sshd,
                      "alarm_deletes = 10\nalarm_window = 1m\npause_on_alarm = yes\n")
    (src / "junk").mkdir()
    for i in range(12):
        (src / "junk" / f"j{i}").write_text(str(i))
    d = Mirrord(cfg, tmp_path / "d.log").start()
    try:
        poll(lambda: _drained(d), what="first copy shipped", timeout=60)
        shutil.rmtree(src / "junk")       # 12 deletes > alarm_deletes: the source is held
        poll(lambda: d.status()["daemon"]["sources"]["uploads"]["deletes_held"],
             what="the alarm holds the deletes", timeout=60)
        d.stop()
        shutil.rmtree(src / "big")
        (src / "big").write_text("a file now")
        d.start()
        time.sleep(3)
        # the daemon runs: it ships the repairs (bounded: it waited for ever before)
        res = subprocess.run([MIRRORD, "-c", str(cfg), "reconcile"], capture_output=True,
                             text=True, timeout=180)
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert "held" in res.stdout + res.stderr
        _tree_kept(cfg)
        d.stop()
        res = d.cli("reconcile", check=False)     # and with the daemon stopped
        assert res.returncode == 1, (res.stdout, res.stderr)
        _tree_kept(cfg)
        d.start()
        d.cli("resume-deletes", "--source", "uploads")
        _exact(cfg, src)
    finally:
        d.stop()
