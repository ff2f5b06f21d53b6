"""keep_deleted in the engine, end to end on a real local target, a real source tree and a
real journal: the live Pipeline/Shipper keeps before a delete, an overwrite and a
directory removal; a failed keep leaves the file and the row is retried with the same
stamp; `mirrord reconcile` keeps what it deletes and runs retention; retention with a short
real window purges exactly the expired entries; the mirrored size comes from `shipped`;
the daemon keeps live deletes, runs retention at start and reports the trash (state,
heartbeat, metrics)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import pytest

from mirrord import journal as journal_mod
from mirrord.cli.main import main
from mirrord.config import load
from mirrord.daemon import Daemon
from mirrord.heartbeat import parse
from mirrord.errors import RetryableError
from mirrord.journal import Change, Journal, read_state
from mirrord.metrics import Metrics
from mirrord.pipeline import Pipeline
from mirrord.shipper import Shipper, serial
from mirrord.targets.local import LocalTarget
from mirrord.trash import keeper, retention
from mirrord.trash.model import DELETED, DIR_REMOVED, OVERWRITTEN, TRASH, stamp_of, trash_rel
from tests.fakes import Clock
from tests.integration.test_daemon_cycle import Running
from tests.reliability.conftest import poll


class Flaky(LocalTarget):
    """A local target whose keep_many fails (RetryableError) while `fail` is set."""

    fail = False

    def keep_many(self, requests):
        if self.fail:
            return [RetryableError("ENOSPC: no space left for the trash") for _ in requests]
        return super().keep_many(requests)


class Site:
    """A source tree, an ini with keep_deleted on, a local target and a Pipeline with
    serial workers and a fake clock (retries come due when the test moves it)."""

    def __init__(self, tmp: Path, *, window: str = "7d"):
        self.tmp, self.src, self.mirror = tmp, tmp / "src", tmp / "mirror"
        self.src.mkdir()
        self.ini = tmp / "mirrord.ini"
        self.ini.write_text(
            f"[mirrord]\nstate_dir = {tmp / 'state'}\nlog_level = warning\n\n"
            f"[source:up]\npath = {self.src}\ntargets = mirror\n\n"
            f"[target:mirror]\ntype = local\npath = {self.mirror}\nfsync = no\n"
            f"keep_deleted = {window}\n\n[reconcile]\ndelete = yes\n")
        self.cfg = load(self.ini)
        self.clock = Clock(time.time())
        self.target = Flaky("mirror", self.mirror, fsync=False)
        self.target.open()
        self.journal = Journal(self.cfg.mirrord.journal_path, {"up": ("mirror",)}, clock=self.clock)
        self.shipper = Shipper({"mirror": self.target}, self.cfg.sources, {"mirror": 1},
                               executor=serial,
                               keep=keeper.policies(self.cfg, {"mirror": self.target}))
        self.pipeline = Pipeline(self.journal, self.shipper, clock=self.clock, idle=self.advance)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    def write(self, rel: str, data: bytes) -> None:
        (self.src / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.src / rel).write_bytes(data)

    def ship(self, *changes: Change, turns: int = 3) -> None:
        self.pipeline.record(list(changes))
        for _ in range(turns):
            self.pipeline.pump()

    def trash(self) -> dict[str, bytes]:
        root = self.mirror / TRASH
        return {str(p.relative_to(self.mirror)): p.read_bytes() for p in root.rglob("*")
                if p.is_file()} if root.exists() else {}

    def pending(self) -> int:
        return self.journal.db.execute("SELECT COUNT(*) FROM ops").fetchone()[0]


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.journal.close()
    s.target.close()


def change(rel: str, kind: str, when: float, **kw) -> Change:
    return Change("up", rel, kind, time=when, **kw)


def test_a_delete_an_overwrite_and_a_directory_removal_are_kept_first(site):
    t0 = time.time() - 60
    for rel, data in {"a.jpg": b"A1", "b.jpg": b"B1", "d/x": b"X", "d/e/y": b"Y"}.items():
        site.write(rel, data)
    site.ship(*(change(r, "put", t0) for r in ("a.jpg", "b.jpg", "d/x", "d/e/y")))
    assert (site.mirror / "d/e/y").read_bytes() == b"Y" and site.trash() == {}
    os.utime(site.mirror / "b.jpg", ns=(1_600_000_000_123_456_789,) * 2)

    (site.src / "a.jpg").unlink()
    site.write("b.jpg", b"B2")
    for rel in ("d/e/y", "d/x"):
        (site.src / rel).unlink()
    (site.src / "d/e").rmdir()
    (site.src / "d").rmdir()
    t1 = t0 + 10
    site.ship(change("a.jpg", "delete", t1), change("b.jpg", "put", t1),
              change("d", "delete", t1, tree=True))

    stamp = stamp_of(t1)
    assert site.trash() == {trash_rel(stamp, DELETED, "a.jpg"): b"A1",
                            trash_rel(stamp, OVERWRITTEN, "b.jpg"): b"B1",
                            trash_rel(stamp, DIR_REMOVED, "d/x"): b"X",
                            trash_rel(stamp, DIR_REMOVED, "d/e/y"): b"Y"}
    assert (site.mirror / "b.jpg").read_bytes() == b"B2"
    assert not (site.mirror / "a.jpg").exists() and not (site.mirror / "d").exists()
    kept_b = os.stat(site.mirror / trash_rel(stamp, OVERWRITTEN, "b.jpg"))
    assert kept_b.st_mtime_ns == 1_600_000_000_123_456_789   # the kept file's own mtime
    assert {e.path for e in site.target.list()} == {"b.jpg"}   # the trash is never listed
    assert site.pending() == 0


def test_a_failed_keep_leaves_the_file_and_the_row_is_retried_with_the_same_stamp(site):
    t0 = time.time() - 60
    site.write("a.jpg", b"precious")
    site.ship(change("a.jpg", "put", t0))
    (site.src / "a.jpg").unlink()
    site.target.fail = True
    site.ship(change("a.jpg", "delete", t0 + 5))
    assert (site.mirror / "a.jpg").read_bytes() == b"precious" and site.trash() == {}
    attempts, error = site.journal.db.execute("SELECT attempts, last_error FROM ops").fetchone()
    assert attempts == 1 and "ENOSPC" in error

    site.target.fail = False
    site.advance(3600)                       # the retry comes due
    for _ in range(3):
        site.pipeline.pump()
    assert site.pending() == 0 and not (site.mirror / "a.jpg").exists()
    assert site.trash() == {trash_rel(stamp_of(t0 + 5), DELETED, "a.jpg"): b"precious"}


def test_a_trash_that_cannot_be_written_deletes_nothing(site):
    site.write("a.jpg", b"precious")
    site.ship(change("a.jpg", "put", time.time()))
    (site.mirror / ".mirrord").mkdir(exist_ok=True)
    (site.mirror / TRASH).write_bytes(b"not a directory")   # EEXIST / ENOTDIR, even for root
    (site.src / "a.jpg").unlink()
    site.ship(change("a.jpg", "delete", time.time()))
    assert (site.mirror / "a.jpg").read_bytes() == b"precious"
    (error,) = site.journal.db.execute("SELECT last_error FROM ops").fetchone()
    assert error


def test_retention_with_a_short_real_window_purges_exactly_the_expired(tmp_path):
    site = Site(tmp_path, window="30s")
    try:
        now = time.time()
        for rel in ("old.jpg", "new.jpg"):
            site.write(rel, rel.encode())
        site.ship(change("old.jpg", "put", now - 120), change("new.jpg", "put", now - 120))
        for rel in ("old.jpg", "new.jpg"):
            (site.src / rel).unlink()
        site.ship(change("old.jpg", "delete", now - 60), change("new.jpg", "delete", now - 1))
        assert len(site.trash()) == 2
        summary = retention.run_for(site.cfg, site.target)
        assert site.trash() == {trash_rel(stamp_of(now - 1), DELETED, "new.jpg"): b"new.jpg"}
        assert (summary.purged, summary.files, summary.bytes, summary.error) == (1, 1, 7, None)
        assert not (site.mirror / TRASH / f"{stamp_of(now - 60)}.{DELETED}").exists()
    finally:
        site.journal.close()
        site.target.close()


def test_the_mirrored_size_is_the_sum_of_what_was_shipped(site):
    site.write("a", b"x" * 1000)
    site.write("d/b", b"y" * 234)
    site.ship(change("a", "put", time.time()), change("d/b", "put", time.time()))
    assert retention.mirrored_bytes(site.cfg.mirrord.journal_path, site.cfg, "mirror") == 1234


def test_a_shrinking_mirror_does_not_shrink_the_percentage_cap(site):
    now = time.time()
    site.write("a", b"a" * 800)
    site.write("b", b"b" * 200)
    site.ship(change("a", "put", now - 60), change("b", "put", now - 60))
    first = retention.run_for(site.cfg, site.target)
    assert first.base == 1000 and first.files == 0
    site.journal.set_state("trash:mirror", first.to_state())   # as the daemon stores it
    (site.src / "b").unlink()
    site.ship(change("b", "delete", now - 1))
    assert retention.mirrored_bytes(site.cfg.mirrord.journal_path, site.cfg, "mirror") == 800
    later = retention.run_for(site.cfg, site.target)   # 20% of 800 would be 160 < 200 kept
    assert (later.base, later.purged, later.files, later.bytes) == (1000, 0, 1, 200)


def test_reconcile_keeps_what_it_deletes_and_purges_the_expired(tmp_path):
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    (src / "d").mkdir(parents=True)
    (src / "d/keep.txt").write_bytes(b"keep")
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\nlog_level = warning\n\n"
                   f"[source:up]\npath = {src}\ntargets = mirror\n\n"
                   f"[target:mirror]\ntype = local\npath = {mirror}\nfsync = no\n"
                   f"keep_deleted = 1h\nkeep_deleted_max = 1G\n\n[reconcile]\ndelete = yes\n")
    argv = ["-c", str(ini), "reconcile", "--json"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    (mirror / "stray.txt").write_bytes(b"stray")
    old = trash_rel(stamp_of(time.time() - 7200), DELETED, "ancient.txt")
    (mirror / old).parent.mkdir(parents=True)
    (mirror / old).write_bytes(b"ancient")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    assert rc == 0 and json.loads(out.getvalue())["targets"]["mirror"]["deleted"] == 1
    assert not (mirror / "stray.txt").exists() and not (mirror / old).exists()
    target = LocalTarget("mirror", mirror, fsync=False)
    (kept,) = target.trash_list()
    assert (kept.path, kept.why, kept.size) == ("stray.txt", DELETED, 5)
    cfg = load(ini)
    db = journal_mod.connect(cfg.mirrord.journal_path, readonly=True)
    try:
        stored = read_state(db, "trash:mirror")
    finally:
        db.close()
    assert stored["purged"] == 1 and stored["files"] == 1 and stored["bytes"] == 5


def test_the_daemon_keeps_live_deletes_runs_retention_and_reports_the_trash(tmp_path):
    src, mirror = tmp_path / "src", tmp_path / "mirror"
    src.mkdir()
    expired = trash_rel(stamp_of(time.time() - 7200), DELETED, "ancient.txt")
    (mirror / expired).parent.mkdir(parents=True)
    (mirror / expired).write_bytes(b"ancient")
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\nheartbeat_interval = 200ms\n\n"
                   f"[source:up]\npath = {src}\ntargets = mirror\n\n"
                   f"[target:mirror]\ntype = local\npath = {mirror}\nfsync = no\n"
                   f"keep_deleted = 1h\nkeep_deleted_max = 1G\n")
    metrics = Metrics()
    daemon = Daemon(load(ini), metrics=metrics)
    daemon._install_signals = lambda: None   # signal handlers need the main thread
    with Running(daemon):
        poll(lambda: not (mirror / expired).exists(), what="the expired entry purged at start")
        (src / "a.jpg").write_bytes(b"live")
        poll(lambda: (mirror / "a.jpg").exists(), what="a.jpg mirrored")
        (src / "a.jpg").unlink()
        poll(lambda: not (mirror / "a.jpg").exists(), what="a.jpg deleted on the mirror")
        (kept,) = LocalTarget("mirror", mirror, fsync=False).trash_list()
        assert (kept.path, kept.why, (mirror / kept.key).read_bytes()) == ("a.jpg", DELETED, b"live")
        daemon.scans.retention_due.clear()    # the next run now, not in retention.INTERVAL
        poll(lambda: daemon.trash.get("mirror") is not None
             and daemon.trash["mirror"].files == 1, what="a retention run that sees a.jpg")
        poll(lambda: parse((mirror / ".mirrord/heartbeat.json").read_bytes()).trash_files == 1,
             what="the heartbeat showing the trash")
        beat = parse((mirror / ".mirrord/heartbeat.json").read_bytes())
        assert beat.trash_bytes == 4 and beat.trash_oldest == pytest.approx(kept.when)
        text = metrics.render().decode()
        assert 'mirrord_trash_files{target="mirror"} 1.0' in text
        assert 'mirrord_trash_bytes{target="mirror"} 4.0' in text
        assert 'mirrord_trash_purged_total{target="mirror"} 1.0' in text
    db = journal_mod.connect(tmp_path / "state/journal.db", readonly=True)
    try:
        assert read_state(db, "trash:mirror")["files"] == 1
    finally:
        db.close()
