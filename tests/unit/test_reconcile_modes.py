"""The reconcile engine's metadata compare with fakes and a real state database: local
listings that carry mode, directories' modes, and an S3-like listing (no source mtime, no
mode, an ETag) judged by the `shipped` row, HEAD'ed only where no row matches."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

from mirrord.reconcile import window as reconcile_mod
from mirrord.journal import Change, Journal, Outcome
from mirrord.targets.base import Target
from mirrord.targets.model import Entry, Features
from mirrord.targets.local import LocalTarget
from tests.unit.test_reconcile import make_cfg, run_pass, source


class ListOnly(Target):
    """Like S3: list() has the server's time and the ETag, never the mode; stat() (a HEAD)
    has the kept mtime and mode. Counts the stats and how many ran at once."""

    type = "listonly"
    features = Features(directories=False, list_mtime=False, keeps_mode=True)

    def __init__(self, name: str = "s3ish"):
        super().__init__(name)
        self.objs: dict[str, tuple[bytes, int, int | None]] = {}
        self.stats: list[str] = []
        self.running = self.most = 0
        self._lock = threading.Lock()

    def hold(self, path: str, data: bytes, mtime_ns: int, mode: int | None) -> None:
        self.objs[path] = (data, mtime_ns, mode)

    def list(self, prefix=""):
        for p in sorted(self.objs):
            data = self.objs[p][0]
            yield Entry(p, len(data), 4e9, token=hashlib.md5(data).hexdigest())

    def stat(self, path):
        with self._lock:
            self.stats.append(path)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if path not in self.objs:
                return None
            data, ns, mode = self.objs[path]
            return Entry(path, len(data), ns / 1e9, token=hashlib.md5(data).hexdigest(),
                         mtime_ns=ns, mode=mode)
        finally:
            with self._lock:
                self.running -= 1

    def put(self, path, local, *, size, mtime, mtime_ns=0, mode=None, keep_stamp=None):
        raise AssertionError("reconcile never writes")

    def delete(self, path, *, tree=False):
        raise AssertionError("reconcile never writes")

    def read(self, path):
        return self.objs[path][0] if path in self.objs else None

    def write_meta(self, name, data):
        pass

    def read_meta(self, name):
        return None


def meta(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, stat.S_IMODE(st.st_mode)


def record_shipped(cfg, target: str, src, rows: dict[str, tuple[bytes, int, int | None]]) -> None:
    """Write `shipped` rows as the shipper's acks would: path -> (data, mtime_ns, mode)."""
    j = Journal(cfg.mirrord.journal_path, {src.name: (target,)})
    try:
        j.enqueue([Change(src.name, p, "put") for p in rows])
        for op in j.claim(target, 1000, now=1e12):
            data, ns, mode = rows[op.path]
            j.ack([Outcome(op, "put", size=len(data), mtime_ns=ns, mode=mode,
                           token=hashlib.md5(data).hexdigest())])
    finally:
        j.close()


def kinds(rec) -> dict[str, str]:
    return {c.path: c.kind for c in rec.changes("repair")}


def test_s3ish_mode_drift_is_judged_by_the_shipped_row_without_a_head(tmp_path):
    src = source(tmp_path, {"a": b"alpha", "b": b"bravo"}, targets=("s3ish",))
    cfg = make_cfg(tmp_path, [src])
    target = ListOnly()
    a_ns, a_mode = meta(src.path / "a")
    b_ns, b_mode = meta(src.path / "b")
    for p, data in (("a", b"alpha"), ("b", b"bravo")):
        target.hold(p, data, *meta(src.path / p))
    record_shipped(cfg, "s3ish", src, {"a": (b"alpha", a_ns, a_mode), "b": (b"bravo", b_ns, b_mode)})
    os.chmod(src.path / "a", 0o600 if a_mode != 0o600 else 0o640)
    res, rec = run_pass(cfg, target, src)
    assert kinds(rec) == {"a": "attr"}
    assert (res.changed, res.bytes) == (1, 0)
    assert target.stats == []                    # the ETag matched: no HEAD


def test_s3ish_row_without_a_recorded_mode_is_an_attr(tmp_path):
    src = source(tmp_path, {"a": b"alpha"}, targets=("s3ish",))
    cfg = make_cfg(tmp_path, [src])
    target = ListOnly()
    target.hold("a", b"alpha", *meta(src.path / "a"))
    record_shipped(cfg, "s3ish", src, {"a": (b"alpha", meta(src.path / "a")[0], None)})
    _res, rec = run_pass(cfg, target, src)
    assert kinds(rec) == {"a": "attr"} and target.stats == []


def test_s3ish_objects_without_a_matching_row_are_headed_and_only_those(tmp_path):
    files = {f"f{i:03d}": b"data %d" % i for i in range(150)}
    src = source(tmp_path, files, targets=("s3ish",))
    cfg = make_cfg(tmp_path, [src])
    target = ListOnly()
    for p, data in files.items():
        target.hold(p, data, *meta(src.path / p))
    record_shipped(cfg, "s3ish", src, {"f000": (files["f000"], *meta(src.path / "f000"))})
    ns, mode = meta(src.path / "f007")
    target.hold("f007", files["f007"], ns, 0o600 if mode != 0o600 else 0o640)   # mode differs
    target.hold("f008", files["f008"], ns - 10**9, mode)                         # mtime differs
    target.hold("f009", files["f009"], meta(src.path / "f009")[0], None)   # no mode kept
    res, rec = run_pass(cfg, target, src)
    assert sorted(target.stats) == sorted(p for p in files if p != "f000")
    assert target.most <= reconcile_mod.CHECKSUM_WORKERS
    assert kinds(rec) == {"f007": "attr", "f008": "put", "f009": "attr"}
    assert res.changed == 3 and res.bytes == len(files["f008"])


def test_local_listing_mode_drift_of_files_and_directories(tmp_path):
    src = source(tmp_path, {"d/x": b"1", "y": b"2"}, targets=("local",))
    cfg = make_cfg(tmp_path, [src])
    target = LocalTarget("local", tmp_path / "mirror", fsync=False)
    target.open()
    (tmp_path / "mirror" / "d").mkdir(parents=True)
    for rel in ("d/x", "y"):
        (tmp_path / "mirror" / rel).write_bytes((src.path / rel).read_bytes())
        ns, mode = meta(src.path / rel)
        os.chmod(tmp_path / "mirror" / rel, mode)
        os.utime(tmp_path / "mirror" / rel, ns=(ns, ns))
    os.chmod(tmp_path / "mirror" / "d", 0o700)
    os.chmod(src.path / "d", 0o750)
    os.chmod(tmp_path / "mirror" / "y", 0o604)
    os.chmod(src.path / "y", 0o644)
    res, rec = run_pass(cfg, target, src)
    assert kinds(rec) == {"d": "mkdir", "y": "attr"}
    assert (res.changed, res.bytes, res.missing) == (2, 0, 0)
