"""An exchange of directories (renameat2 RENAME_EXCHANGE) deletes nothing, and the
mass-change alarm counts nothing for it (mirrord/alarm_moved.py).

Found by a fresh review (helper-136): two exchanges of two 10-file directories counted 20
deletes with fanotify and 40 with inotify, because the look at both names that follows an
exchange proposes every file the targets still hold at each name as a delete; a storm of
larger exchanges fired the alarm with nothing lost. Each shape runs the real daemon on
both watcher backends with `pause_on_alarm = yes` and a low threshold: a false alarm would
also hold the deletes the exchange needs on the target, and the mirror would not converge.
The control shapes show the rule swallows no real delete."""

from __future__ import annotations

import ctypes
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Mirrord, local_mirror, wait_converged
from tests.e2e.test_alarm_daemon import poll

THRESHOLD = 5
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """renameat2(a, b, RENAME_EXCHANGE) (coreutils 9.1 has no `mv --exchange`)."""
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), 2) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def fill(d: Path, n: int, prefix: str) -> None:
    d.mkdir(parents=True)
    for i in range(n):
        (d / f"{prefix}{i}.jpg").write_bytes(b"%s %d" % (prefix.encode(), i))


@pytest.fixture(params=["inotify", "fanotify"])
def setup(request, tmp_path: Path):
    src = tmp_path / "src"
    fill(src / "a", 10, "f")
    fill(src / "b", 10, "g")
    fill(src / "p" / "q", 10, "h")
    (src / "file.jpg").write_bytes(b"a file")
    with local_mirror(tmp_path, f"watcher = {request.param}\nalarm_deletes = {THRESHOLD}\n"
                                "alarm_window = 10m\npause_on_alarm = yes") as (daemon, target):
        yield src, daemon, target


def settled_count(src: Path, daemon: Mirrord, target) -> int:
    """The alarm's count once the target matches the source and nothing is pending, read
    twice a second apart (the look an exchange asks for runs on the scanner thread)."""
    wait_converged(src, target)

    def count() -> int | None:
        doc = daemon.status()
        if any(t["pending"] for t in doc["targets"].values()):
            return None
        return (doc["sources"]["uploads"].get("alarm_detail") or {}).get("count", 0)

    while True:
        first = poll("nothing pending", lambda: (count(),) if count() is not None else None,
                     daemon)[0]
        time.sleep(1.0)
        if count() == first:
            return first


@pytest.mark.parametrize("storm", [False, True])
def test_two_directories_exchanged_again_and_again_count_nothing(setup, storm):
    src, daemon, target = setup
    for _ in range(6):
        exchange(src / "a", src / "b")
        if not storm:       # each exchange shipped before the next
            wait_converged(src, target)
    assert settled_count(src, daemon, target) == 0


def test_directories_at_different_depths_exchanged_count_nothing(setup):
    src, daemon, target = setup
    exchange(src / "a", src / "p" / "q")
    assert settled_count(src, daemon, target) == 0


@pytest.mark.parametrize("other", ["file.jpg", "link"])
def test_a_directory_exchanged_with_a_file_or_a_symlink_counts_at_most_one(setup, other):
    # fanotify reads the directory's rename, then its tree's removal at the old name (a
    # file stands there now): a tree removal counts at least 1 (alarm_batch.count_batch)
    src, daemon, target = setup
    if other == "link":
        (src / "link").symlink_to("b")
    exchange(src / "a", src / other)
    assert settled_count(src, daemon, target) <= 1


def test_a_file_deleted_after_an_exchange_counts(setup):
    src, daemon, target = setup
    exchange(src / "a", src / "b")
    (src / "b" / "f1.jpg").unlink()        # a's f1, now below b
    assert settled_count(src, daemon, target) >= 1


def test_an_exchanged_directory_removed_counts_its_files(setup):
    src, daemon, target = setup
    exchange(src / "a", src / "b")
    shutil.rmtree(src / "b")               # a's ten files, now below b
    # the alarm fires at the threshold (5) while the rest may still be counted: polled
    # until all ten are (a rehearsal under load read 'alarm' before they were)
    poll("the alarm fired for a's ten files", lambda: (lambda d: d["alarm"] == "alarm" and (
        d.get("alarm_detail") or {}).get("count", 0) >= 10)(
        daemon.status()["sources"]["uploads"]), daemon)


@pytest.fixture(params=["inotify", "fanotify"])
def held_exchange(request, tmp_path: Path):
    """As `setup`, with fault point "shipped" armed for the rename of a to b (held in
    flight once done on the target, mirrord.faults): (src, daemon, target, faults)."""
    src = tmp_path / "src"
    fill(src / "a", 10, "f")
    fill(src / "b", 10, "g")
    faults = tmp_path / "faults"
    faults.mkdir()
    with local_mirror(tmp_path, f"watcher = {request.param}\nalarm_deletes = {THRESHOLD}\n"
                                "alarm_window = 10m\npause_on_alarm = yes",
                      env={"MIRRORD_FAULT_DIR": str(faults)}) as (daemon, target):
        try:
            yield src, daemon, target, faults
        finally:
            (faults / "shipped").unlink(missing_ok=True)   # a held worker let go: stop ends


def test_a_side_of_an_exchange_in_flight_removed_counts_its_files(held_exchange):
    """Found running beside another test (load): `mv --exchange a b`, the rename's row
    still in flight when the look at both names had proposed its deletes (each spared: the
    file stood at the other name), then `rm -rf b`: a's ten files are lost. The removal's
    count took them as deleted already (their deletes queued at a) and b's old files as
    gone to a, and counted 1: no alarm, and the deletes went. Here every op on b (the
    rename, the look's puts there) is held done and not acked, so that window stays open."""
    src, daemon, target, faults = held_exchange
    poll("the start's reconcile pass done", lambda: "reconcile pass done" in daemon.log.read_text(
        errors="replace"), daemon)
    (faults / "shipped").write_text("local b\nlocal b/*\n")
    exchange(src / "a", src / "b")
    poll("an op on b done and held", lambda: (faults / "shipped.reached").exists(), daemon)
    time.sleep(1.0)   # the look at both names runs on the scanner thread (no signal to wait on)
    shutil.rmtree(src / "b")               # a's ten files, now below b
    doc = poll("the alarm fired for a's ten files", lambda: (lambda d: d if d["alarm"] == "alarm"
               and (d.get("alarm_detail") or {}).get("count", 0) >= 10 else None)(
        daemon.status()["sources"]["uploads"]), daemon)
    assert doc["alarm_detail"]["deletes_held"], doc
