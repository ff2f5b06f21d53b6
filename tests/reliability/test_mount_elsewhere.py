"""A mount or unmount elsewhere on the host, while a source root the user emptied still has
its removals in flight, is no reason to hold that root lost (mirrord.daemon_roots.hold_empty).

Found when the suite ran two tests at once: one test's tmpfs mount came while another's
daemon had just shipped the removal of everything below its root and not recorded it yet
(fault point "shipped"). The daemon read "the source root is empty after a mount table
change while files shipped from it are recorded", held the root lost, and its deletes
waited until a file was written there again: the target kept the removed file for good.
A root whose directory and unique mount ID are still the ones its guard learnt is not held
now. The other side stays covered by test_source_root_back.py: an empty file system
mounted in the root's place is held lost, and nothing of it is deleted.

Both watchers, the real `mirrord run`, a real tmpfs mount below another source's root (its
"mounted below the source root" line proves the daemon handled the change of the table).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrord.targets.local import LocalTarget
from tests.e2e.helpers import wait_converged
from tests.reliability.conftest import Daemon, poll, tmpfs


@pytest.fixture(params=["inotify", "fanotify"])
def watcher(request) -> str:
    return request.param


def _config(tmp: Path, watcher: str) -> Path:
    text = f"[mirrord]\nstate_dir = {tmp}/state\nworkers = 2\nheartbeat_interval = 300ms\n"
    for name in ("a", "b"):
        text += (f"[source:{name}]\npath = {tmp}/{name}\ntargets = t_{name}\n"
                 f"watcher = {watcher}\n"
                 f"[target:t_{name}]\ntype = local\npath = {tmp}/mirror-{name}\n")
    cfg = tmp / "mirrord.ini"
    cfg.write_text(text + "[reconcile]\nevery = off\n")
    return cfg


def _state(d: Daemon, source: str) -> str | None:
    return ((d.status().get("daemon") or {}).get("sources", {}).get(source) or {}).get("state")


@pytest.mark.parametrize("how", ["tree", "file"])
def test_an_emptied_root_is_not_lost_when_something_is_mounted_elsewhere(tmp_path, watcher,
                                                                          how):
    """a emptied by the user (a directory moved out, or its last file deleted), its removal
    done on the target and held before it is recorded; meanwhile a tmpfs is mounted below
    source b. a stays `ok`, and once the removal is let go a's target is empty; a file
    written afterwards arrives (a lost root's watcher would not bring it)."""
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "d").mkdir(parents=True)
    (a / "d" / "f.jpg").write_bytes(b"f" * 100)
    b.mkdir()
    (b / "keep.jpg").write_bytes(b"b")
    faults = tmp_path / "faults"
    faults.mkdir()
    d = Daemon(_config(tmp_path, watcher), tmp_path / "log",
               env={"MIRRORD_FAULT_DIR": str(faults)})
    target_a = LocalTarget("t_a", tmp_path / "mirror-a")
    try:
        d.start()
        wait_converged(a, target_a)
        (faults / "shipped").write_text("t_a d\n" if how == "tree" else "t_a d*\n")
        if how == "tree":
            (a / "d").rename(tmp_path / "moved-out")
        else:
            (a / "d" / "f.jpg").unlink()
            (a / "d").rmdir()
        poll(lambda: (faults / "shipped.reached").exists(), what="the removal done, held")
        with tmpfs(b / "sub", "4m"):
            poll(lambda: "msg=\"file system mounted below the source root" in d.log.read_text(errors="replace")
                 and "source=b" in d.log.read_text(errors="replace"), what="the mount table change handled")
            assert _state(d, "a") == "ok", d.log.read_text(errors="replace")
            assert "source root lost" not in d.log.read_text(errors="replace")
            (faults / "shipped").unlink()
            wait_converged(a, target_a)
            (a / "after.jpg").write_bytes(b"written after the mount")
            wait_converged(a, target_a)
            assert _state(d, "a") == "ok"
            assert d.stop() == 0
    finally:
        (faults / "shipped").unlink(missing_ok=True)
        d.stop()
