"""The live mass-change alarm through the real `mirrord run` process and a local target:
an rm -rf over the threshold with pause_on_alarm holds the deletes while a new file is
still mirrored; status shows `alarm`; `mirrord resume-deletes` lets them through."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Mirrord, wait_converged
from mirrord import config as config_mod
from mirrord import targets as target_registry

FILES, THRESHOLD = 50, 10


def _config(tmp: Path, *, pause: bool, watcher: str = "auto") -> Path:
    (tmp / "src").mkdir()
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = ./state
workers = 2
heartbeat_interval = 200ms

[source:uploads]
path = ./src
targets = local
watcher = {watcher}
alarm_deletes = {THRESHOLD}
alarm_window = 10m
pause_on_alarm = {"yes" if pause else "no"}

[target:local]
type = local
path = ./mirror
""")
    return cfg


@pytest.fixture
def setup(tmp_path, request):
    cfg = _config(tmp_path, pause=getattr(request, "param", True))
    daemon = Mirrord(cfg, tmp_path / "mirrord.log")
    target = target_registry.create(config_mod.load(cfg).targets["local"])
    target.open()
    yield tmp_path, daemon, target
    daemon.stop()
    target.close()


def poll(what: str, check, daemon: Mirrord, timeout: float = 60.0):
    """Poll `check()` until it returns something truthy (bounded; no timing asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached\n{daemon.log.read_text(errors='replace')}")
        time.sleep(0.1)


def started_with_batch(src, daemon, target, n: int = FILES, body=lambda i: b"x" * i) -> None:
    """`n` files src/batch/fNN.jpg (bytes `body(i)`), `daemon` started and `target`
    converged on them."""
    (src / "batch").mkdir()
    for i in range(n):
        (src / "batch" / f"f{i:02}.jpg").write_bytes(body(i))
    daemon.start()
    wait_converged(src, target)


def shipped_batch(src, daemon, target) -> None:
    """FILES files in src/batch plus src/keep.txt, shipped by one run of `daemon` to
    `target`, then the daemon stopped cleanly (the start of the while-stopped tests)."""
    (src / "keep.txt").write_bytes(b"stays")
    started_with_batch(src, daemon, target)
    assert daemon.stop() == 0


def _batch_files(target) -> set[str]:
    return {e.path for e in target.list() if not e.is_dir and e.path.startswith("batch/")}


def test_rm_rf_over_the_threshold_holds_deletes_until_resumed(setup):
    tmp, daemon, target = setup
    src = tmp / "src"
    started_with_batch(src, daemon, target)
    for i in range(5):                                 # under the threshold: shipped at once
        (src / "batch" / f"f{i:02}.jpg").unlink()
    wait_converged(src, target)
    assert daemon.status()["sources"]["uploads"]["alarm"] == "ok"

    shutil.rmtree(src / "batch")                       # 45 more deletes, then the directory
    (src / "new.txt").write_bytes(b"created meanwhile")

    def held():
        doc = daemon.status()["sources"]["uploads"]
        h = doc.get("deletes_held")
        # every delete recorded: the ones held, plus the ones shipped before the hold
        shipped = FILES - len(_batch_files(target))
        firing = (doc["alarm_detail"] or {}).get("state") == "alarm"   # the daemon's state row
        return doc if firing and h and h["waiting"] + shipped == FILES + 1 else None

    doc = poll("deletes held", held, daemon)
    assert doc["alarm"] == "alarm"
    poll("new file mirrored", lambda: target.read("new.txt") == b"created meanwhile", daemon)
    # a later create goes out too, after the held deletes were recorded: the shipper is not
    # merely slow, the deletes are held
    (src / "later.txt").write_bytes(b"later")
    poll("later file mirrored", lambda: target.read("later.txt") == b"later", daemon)
    remaining = _batch_files(target)
    assert len(remaining) >= FILES - THRESHOLD        # at most alarm_deletes got through
    assert daemon.status()["sources"]["uploads"]["deletes_held"]["waiting"] == len(remaining) + 1

    text = daemon.cli("status").stdout
    assert "alarm" in text and "mirrord resume-deletes --source uploads" in text

    # a restart keeps the hold: its catch-up finds the same deletes and they stay held
    assert daemon.stop() == 0
    daemon.start()
    poll("restart: hold logged, with its reason",
         lambda: 'msg="deletes are held" source=uploads reason="mass-change alarm: '
         in daemon.log.read_text(), daemon)
    (src / "after-restart.txt").write_bytes(b"r")
    poll("file after restart mirrored", lambda: target.read("after-restart.txt") == b"r", daemon)
    assert _batch_files(target) == remaining
    assert daemon.status()["sources"]["uploads"]["alarm"] == "alarm"

    wrong = daemon.cli("resume-deletes", "--source", "nope", check=False)
    assert wrong.returncode == 2 and "[source:nope]" in wrong.stderr
    assert _batch_files(target) == remaining          # still held

    out = daemon.cli("resume-deletes", "--source", "uploads").stdout
    assert f"deletes resumed for source uploads: {len(remaining) + 1} held deletes" in out
    wait_converged(src, target)
    poll("resume logged", lambda: "deletes resumed" in daemon.log.read_text(), daemon)
    log = daemon.log.read_text()
    assert log.count("mass-change alarm: too many") == 1          # one line, not one per delete
    assert daemon.status()["sources"]["uploads"]["deletes_held"] is None
    again = daemon.cli("resume-deletes").stdout
    assert "no deletes were held" in again


@pytest.mark.parametrize("setup", [False], indirect=True)
def test_without_pause_the_alarm_fires_and_deletes_go_on(setup):
    tmp, daemon, target = setup
    src = tmp / "src"
    started_with_batch(src, daemon, target, body=lambda i: b"y")
    shutil.rmtree(src / "batch")
    wait_converged(src, target)                        # every delete went out
    def counted():   # the state row is written each heartbeat: poll until it has every delete
        doc = daemon.status()["sources"]["uploads"]
        # every file's delete, and the directory's own removal counted once or as the files
        # the state database still knew below it (watcher backends batch differently)
        return doc if (doc["alarm_detail"] or {}).get("count", 0) >= FILES else None

    doc = poll("every delete counted", counted, daemon)
    assert doc["alarm"] == "alarm" and doc["deletes_held"] is None
    assert daemon.log.read_text().count("mass-change alarm: too many") == 1


@pytest.fixture(params=["inotify", "fanotify"])
def held_setup(tmp_path, request):
    """A daemon on the local target with fault point "shipped" armed (mirrord.faults) and
    alarm_deletes = THRESHOLD, pause off; the watcher backend is the parameter."""
    cfg = _config(tmp_path, pause=False, watcher=request.param)
    faults = tmp_path / "faults"
    faults.mkdir()
    daemon = Mirrord(cfg, tmp_path / "mirrord.log", env={"MIRRORD_FAULT_DIR": str(faults)})
    target = target_registry.create(config_mod.load(cfg).targets["local"])
    target.open()
    yield tmp_path, daemon, target, faults
    (faults / "shipped").unlink(missing_ok=True)   # a held worker let go: the stop can finish
    daemon.stop()
    target.close()


@pytest.mark.parametrize("delete_first", [False, True], ids=["moved-out", "deleted-then-moved-out"])
def test_a_tree_removal_counts_a_put_done_and_not_acked(held_setup, delete_first):
    """THRESHOLD files shipped and acked, one more put done on the target and held before
    its ack, then the directory moved out of the source (a tree removal with no file
    deletes, on either backend): the target loses THRESHOLD + 1 files, over the threshold.
    The count read `shipped` alone: THRESHOLD, no alarm (a loaded CI run missed every
    delete of a just-converged rm -rf the same way). With the held file deleted first
    (counted on its own), the tree's count took that delete off the shipped files though
    the file had no `shipped` row: THRESHOLD again."""
    tmp, daemon, target, faults = held_setup
    src = tmp / "src"
    started_with_batch(src, daemon, target, THRESHOLD)
    poll("every put acked", lambda: daemon.status()["targets"]["local"]["pending"] == 0, daemon)
    (faults / "shipped").write_text("local batch/late.bin\n")
    (src / "batch" / "late.bin").write_bytes(b"late")
    poll("the put done, held", lambda: (faults / "shipped.reached").exists(), daemon)
    if delete_first:
        (src / "batch" / "late.bin").unlink()
        poll("its delete counted", lambda: (daemon.status()["sources"]["uploads"]
             ["alarm_detail"] or {}).get("count") == 1, daemon)
    (src / "batch").rename(tmp / "moved-out")
    doc = poll("the alarm fired", lambda: (lambda d: d if d["alarm"] == "alarm" else None)(
        daemon.status()["sources"]["uploads"]), daemon)
    assert doc["alarm_detail"]["count"] >= THRESHOLD + 1   # (a write read twice would add one)
    (faults / "shipped").unlink()
    wait_converged(src, target)
    assert daemon.log.read_text().count("mass-change alarm: too many") == 1


def test_a_removal_over_one_done_and_not_acked_counts_each_file_once(held_setup):
    """d/sub (6 files) moved out of the source, its removal done on the target and held
    before its ack, then d moved out: 6 + 1 files lost, under the threshold. The second
    count read d/sub's `shipped` rows again: 6 + 7, a false alarm."""
    tmp, daemon, target, faults = held_setup
    src = tmp / "src"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d" / "a.jpg").write_bytes(b"a")
    for i in range(6):
        (src / "d" / "sub" / f"f{i}.jpg").write_bytes(b"x")
    daemon.start()
    wait_converged(src, target)
    poll("every put acked", lambda: daemon.status()["targets"]["local"]["pending"] == 0, daemon)

    def count() -> int:
        return (daemon.status()["sources"]["uploads"]["alarm_detail"] or {}).get("count", 0)

    (faults / "shipped").write_text("local d/sub\n")
    (src / "d" / "sub").rename(tmp / "out-sub")
    poll("the removal done, held", lambda: (faults / "shipped.reached").exists(), daemon)
    assert poll("the removal counted", count, daemon) == 6
    (src / "d").rename(tmp / "out-d")
    assert poll("the second removal counted", lambda: count() > 6 and count(), daemon) == 7
    assert daemon.status()["sources"]["uploads"]["alarm"] == "ok"
    (faults / "shipped").unlink()
    wait_converged(src, target)
    assert "mass-change alarm: too many" not in daemon.log.read_text()


def _stalled(daemon, faults: Path, src: Path) -> None:
    """Both workers held at fault point "shipped" on a put of stall/sN: what is recorded
    next stays queued (a target behind, or a batch read before its renames went)."""
    (faults / "shipped").write_text("local stall/*\n")
    (src / "stall").mkdir()
    for i in range(2):
        (src / "stall" / f"s{i}").write_bytes(b"s")
    poll("both workers held", lambda: (faults / "shipped.reached").exists() and len(
        (faults / "shipped.reached").read_text().splitlines()) >= 2, daemon)


@pytest.mark.parametrize("renamed", ["each-file", "directory"])
def test_files_renamed_then_rewritten_in_place_count_as_overwrites(held_setup, renamed):
    """Ransomware's rename-then-encrypt: THRESHOLD + 1 mirrored files renamed (each to
    fNN.jpg.locked, or their directory to batch.locked), then each rewritten in place
    while the renames are still queued. Every rewrite replaces a version the target holds
    under the old name. The overwrite test read the new name alone: 0 counted, no alarm."""
    tmp, daemon, target, faults = held_setup
    src = tmp / "src"
    started_with_batch(src, daemon, target, THRESHOLD + 1)
    poll("every put acked", lambda: daemon.status()["targets"]["local"]["pending"] == 0, daemon)
    _stalled(daemon, faults, src)
    if renamed == "directory":
        (src / "batch").rename(src / "batch.locked")
        locked = [src / "batch.locked" / f"f{i:02}.jpg" for i in range(THRESHOLD + 1)]
    else:
        locked = []
        for i in range(THRESHOLD + 1):
            old = src / "batch" / f"f{i:02}.jpg"
            old.rename(old.with_name(old.name + ".locked"))
            locked.append(old.with_name(old.name + ".locked"))
    for f in locked:
        f.write_bytes(b"encrypted " + f.name.encode())
    doc = poll("the alarm fired", lambda: (lambda d: d if d["alarm"] == "alarm" else None)(
        daemon.status()["sources"]["uploads"]), daemon)
    assert doc["alarm_detail"]["count"] >= THRESHOLD + 1
    (faults / "shipped").unlink()
    wait_converged(src, target)


def test_a_directory_moved_in_renamed_and_moved_out_counts_every_file(held_setup):
    """`mv batch a/batch; mv a b; mv b /outside` in one go, no fault point: a's rename is
    not kept (batch's move pending below it), so the target removes a at once and re-sends
    under b, which is gone by the time the walk looks. THRESHOLD + 2 mirrored files lost;
    counted 1 (a breaker, 3 runs of 3 on inotify): what the journal showed under b then."""
    tmp, daemon, target, _faults = held_setup
    src = tmp / "src"
    started_with_batch(src, daemon, target, THRESHOLD)
    (src / "a").mkdir()
    for name in ("g1", "g2"):
        (src / "a" / name).write_bytes(b"g")
    wait_converged(src, target)
    poll("every put acked", lambda: daemon.status()["targets"]["local"]["pending"] == 0, daemon)
    (src / "batch").rename(src / "a" / "batch")
    (src / "a").rename(src / "b")
    (src / "b").rename(tmp / "outside")
    doc = poll("the alarm fired", lambda: (lambda d: d if d["alarm"] == "alarm" else None)(
        daemon.status()["sources"]["uploads"]), daemon)
    assert doc["alarm_detail"]["count"] >= THRESHOLD + 2
    wait_converged(src, target)
