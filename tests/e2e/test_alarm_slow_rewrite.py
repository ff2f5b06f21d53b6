"""Slow writers and the mass-change alarm, through the real `mirrord run` process and both
watchers. Found by hand:
- a rewrite in place counts each file's shipped version once (mirrord.alarm_replaced): 20
  shipped files rewritten in 3 writes 0.5 s apart, then closed, counted 80 with inotify (a
  write reported after each pause longer than its quiet time, and at the close);
- new files replace nothing (mirrord.journal.first_copies): 50 new directories of 5 files
  held open 1 s, then closed, counted 56-57 (the first put waited for the close, ran again
  as it came, and the close's write counted the copy it sent);
- an append replaces nothing (mirrord.appends): 40 new files each written in 15 chunks
  (open, append, close) counted 376-423, one per chunk after the first acked one."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Mirrord, local_mirror, wait_converged
from tests.e2e.test_alarm_daemon import poll

FILES = 20


def _make_tree(tmp: Path) -> None:
    (tmp / "src" / "d").mkdir(parents=True)
    for i in range(FILES):
        (tmp / "src" / "d" / f"f{i}.bin").write_bytes(bytes([i]) * 20_000)


def _count(daemon: Mirrord) -> int:
    out = daemon.cli("status").stdout
    found = re.search(r"alarm: (\d+) deletes or overwrites", out)
    return int(found.group(1)) if found else 0


def _counted(daemon: Mirrord) -> int:
    """The alarm's count in its window, firing or not (`status --json`)."""
    return (daemon.status()["sources"]["uploads"]["alarm_detail"] or {}).get("count", 0)


def _append_lines(tmp: Path) -> None:
    """Each of the FILES shipped files appended to 5 times, 30 ms apart (a log)."""
    for _ in range(5):
        for i in range(FILES):
            with open(tmp / "src" / "d" / f"f{i}.bin", "ab") as fh:
                fh.write(b"a log line\n")
        time.sleep(0.03)


@pytest.fixture(params=["inotify", "fanotify"])
def running(tmp_path, request):
    """The daemon on FILES shipped files in src/d, with the watcher of the parameter,
    started and converged: (tmp_path, daemon, target)."""
    _make_tree(tmp_path)
    with local_mirror(tmp_path, f"watcher = {request.param}\nalarm_deletes = 10\n"
                                "alarm_window = 10m\npause_on_alarm = no",
                      more="[reconcile]\nevery = off\n") as (daemon, target):
        yield tmp_path, daemon, target


def test_each_file_rewritten_slowly_counts_once(running):
    tmp_path, daemon, target = running
    files = [open(tmp_path / "src" / "d" / f"f{i}.bin", "r+b") for i in range(FILES)]
    try:
        for _ in range(3):   # each pause longer than the watcher's quiet time (0.2 s)
            for fh in files:
                fh.write(b"Z" * 3000)
                fh.flush()
            time.sleep(0.5)
    finally:
        for fh in files:
            fh.close()
    wait_converged(tmp_path / "src", target)
    poll("counted", lambda: _count(daemon) >= FILES, daemon)
    time.sleep(1)   # anything counted late shows now
    assert _count(daemon) == FILES, daemon.cli("status").stdout


def test_new_files_written_slowly_count_nothing(running):
    """Rounds of 250 new files in 50 new directories, held open and closed together at
    several delays: a round closed as its puts' retries run (the first put found the files
    open and waits 0.5 s, the next 1 s) had the close events find those puts in flight or
    just acked, with the copy of the closed file (by hand: 54 of 250 at 0.6 s and at
    1.3 s, 0 at 0.9 s). Which rounds meet them is timing; every round counts 0."""
    tmp_path, daemon, target = running
    for round_, delay in enumerate((0.6, 0.8, 1.1, 1.3)):
        files = []
        try:
            for i in range(50):
                (tmp_path / "src" / f"r{round_}n{i}").mkdir()
                for j in range(5):
                    fh = open(tmp_path / "src" / f"r{round_}n{i}" / f"f{j}.jpg", "wb")
                    files.append(fh)
                    fh.write(b"first half " * 100)
                    fh.flush()
            time.sleep(delay)
            for fh in files:
                fh.write(b"second half")
        finally:
            for fh in files:
                fh.close()
        wait_converged(tmp_path / "src", target)
    time.sleep(1)   # anything counted late shows now
    assert _count(daemon) == 0, daemon.cli("status").stdout


@pytest.mark.parametrize("gap", [0.01, 0.001])
def test_files_appended_chunk_by_chunk_count_nothing(running, gap):
    """4 writers, 10 new files each, every file written in 15 chunks, each chunk opened,
    appended and closed `gap` seconds after the last; then each shipped file appended to
    5 times, 30 ms apart (a log). Each version sent is acked or read while the next
    append comes, which destroys none of its bytes (mirrord.appends). Before: one per
    chunk after the first acked one (376-423 of 560 at 10 ms); at 1 ms, 29-65 more where
    the alarm asked while a worker was reading the file (first_copies.LOOK_WAIT)."""
    tmp_path, daemon, target = running

    def write(k: int) -> None:
        for f in range(10):
            for _ in range(15):
                with open(tmp_path / "src" / "d" / f"n{k}_{f}.bin", "ab") as fh:
                    fh.write(b"x" * 4096)
                time.sleep(gap)
    writers = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    _append_lines(tmp_path)
    wait_converged(tmp_path / "src", target)
    time.sleep(1)   # anything counted late shows now
    assert _count(daemon) == 0, daemon.cli("status").stdout


def test_a_log_shipped_before_a_restart_counts_its_first_append_only(running):
    """The FILES files were shipped before the daemon restarted: nothing kept of them
    (memory only). Each is appended to 5 times, 30 ms apart (a log): the first append
    counts 1 (no digest of the version the target holds: the safe side); the version it
    made was made by that counted write, so the appends after it count nothing
    (mirrord.alarm_replaced; before, the second counted 1 too: 2 x FILES)."""
    tmp_path, daemon, target = running
    daemon.stop()
    daemon.start()
    wait_converged(tmp_path / "src", target)
    _append_lines(tmp_path)
    wait_converged(tmp_path / "src", target)
    poll("counted", lambda: _count(daemon) >= FILES, daemon)
    time.sleep(1)   # anything counted late shows now
    assert _count(daemon) == FILES, daemon.cli("status").stdout


@pytest.mark.parametrize("watcher", ["inotify", "fanotify"])
def test_a_rewrite_begun_while_a_first_copy_lands_counts_once(tmp_path, watcher):
    """The shape of a CI run (17 of 20), held open by the fault point "stored": a new
    file's put stored on the target, the file then rewritten in place and kept open (its
    event waits for the watcher's quiet time), the worker let go: its check after the
    send finds the file changed, a wait, nothing recorded (errors.ChangedWhileSent). The
    rewrite destroys the copy the target holds: 1 (0 before: its event, read after that
    answer, found nothing held), and its close nothing more. (The point "stored" comes
    before that check.)"""
    _make_tree(tmp_path)
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / "stored").write_text("local new/*\n")
    with local_mirror(tmp_path, f"watcher = {watcher}\nalarm_deletes = 10\n"
                                "alarm_window = 10m\npause_on_alarm = no",
                      more="[reconcile]\nevery = off\n",
                      env={"MIRRORD_FAULT_DIR": str(faults)}) as (daemon, target):
        (tmp_path / "src" / "new").mkdir()
        (tmp_path / "src" / "new" / "f.bin").write_bytes(b"first version " * 2000)
        reached = faults / "stored.reached"
        poll("the put held", lambda: reached.exists() and "new/f.bin" in reached.read_text(),
             daemon)
        with open(tmp_path / "src" / "new" / "f.bin", "r+b") as writer:
            writer.write(b"Z" * 3000)
            writer.flush()
            (faults / "stored").unlink()
            time.sleep(0.6)   # the quiet time passes: the write is reported, still open
        wait_converged(tmp_path / "src", target)
        poll("counted", lambda: _counted(daemon) >= 1, daemon)
        time.sleep(1)   # anything counted late shows now
        assert _counted(daemon) == 1, daemon.cli("status").stdout
