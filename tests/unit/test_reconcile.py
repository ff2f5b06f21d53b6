"""The reconcile engine on the in-memory and local targets: what it finds, what it proposes,
and when it refuses to delete. The real services are in tests/integration/test_reconcile_*."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path


from mirrord.config import Config, MirrordSettings, ReconcileConfig, SourceConfig
from mirrord.journal import Change, Journal
from mirrord.merge import Cursor, below, merge
from mirrord.progress import Progress, format_line
from mirrord.reconcile import reconcile_pass
from mirrord.shipper import Shipper
from mirrord.targets.local import LocalTarget
from mirrord.targets.memory import MemoryTarget

ROOT = Path(__file__).resolve().parents[2]


def make_cfg(tmp_path: Path, sources: list[SourceConfig], **rc) -> Config:
    return Config(path=tmp_path / "mirrord.ini",
                  mirrord=MirrordSettings(state_dir=tmp_path / "state"),
                  sources=tuple(sources), targets={}, reconcile=ReconcileConfig(**rc),
                  failover=None)


def source(tmp_path: Path, files: dict[str, bytes], *, name: str = "up", dest: str = "",
           targets=("memory",), exclude=()) -> SourceConfig:
    root = tmp_path / f"src-{name}"
    root.mkdir(exist_ok=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return SourceConfig(name, root, tuple(targets), exclude=tuple(exclude), dest=dest)


def mirror_into(target: MemoryTarget, src: SourceConfig, *, dest: str = "") -> None:
    for dirpath, _dirs, names in os.walk(src.path):
        for n in names:
            full = Path(dirpath, n)
            rel = str(full.relative_to(src.path))
            target.files[f"{dest}/{rel}" if dest else rel] = (full.read_bytes(), full.stat().st_mtime)


class Recorder:
    """The emit callbacks: every call, in order."""

    def __init__(self):
        self.calls: list[tuple[str, list[Change]]] = []

    def emit(self, changes):
        self.calls.append(("repair", list(changes)))

    def emit_deletes(self, changes):
        self.calls.append(("delete", list(changes)))

    def changes(self, which: str) -> list[Change]:
        return [c for kind, batch in self.calls if kind == which for c in batch]


def run_pass(cfg, target, src, rec=None, **kw):
    rec = rec or Recorder()
    res = reconcile_pass(cfg, target, src, emit=rec.emit, emit_deletes=rec.emit_deletes, **kw)
    return res, rec


# ---------------------------------------------------------------- merge

def test_cursor_and_merge_walk_ordered_streams_in_step():
    a = Cursor([b"a", b"c", b"d"], lambda x: x)
    b = Cursor([b"b", b"c"], lambda x: x)
    assert list(merge(a, b)) == [(b"a", [b"a", None]), (b"b", [None, b"b"]),
                                 (b"c", [b"c", b"c"]), (b"d", [b"d", None])]
    c = Cursor([(b"a", 1), (b"b", 2), (b"z", 3)], lambda r: r[0])
    assert list(c.take_before(b"c")) == [(b"a", 1), (b"b", 2)]
    assert c.take_equal(b"y") is None and c.take_equal(b"z") == (b"z", 3) and not c
    assert below(b"x/y", (b"x/",)) and below(b"x/", (b"x/",)) and not below(b"xy", (b"x/",))


# ---------------------------------------------------------------- finding differences

def test_missing_changed_extra_on_memory_target(tmp_path):
    src = source(tmp_path, {"a": b"1", "d/b": b"22", "d/c": b"333", "e": b"4444"})
    cfg = make_cfg(tmp_path, [src])
    t = MemoryTarget()
    mirror_into(t, src)
    del t.files["a"]                                   # missing
    t.files["d/b"] = (b"2x2", t.files["d/b"][1])       # size differs
    t.files["d/c"] = (b"333", t.files["d/c"][1] - 5)   # mtime differs
    t.files["zz"] = (b"extra", 0.0)                    # extra
    res, rec = run_pass(cfg, t, src)
    assert (res.compared, res.missing, res.changed, res.extra) == (4, 1, 2, 1)
    assert res.clean and res.deleted == 1 and res.bytes == 1 + 2 + 3
    assert sorted(c.path for c in rec.changes("repair")) == ["a", "d/b", "d/c"]
    assert all(c.kind == "put" and c.targets == ("memory",) for c in rec.changes("repair"))
    assert [(c.path, c.kind) for c in rec.changes("delete")] == [("zz", "delete")]
    assert [kind for kind, _ in rec.calls][-1] == "delete"   # deletes come last, once
    assert t.calls and all(op == "list" for op, _ in t.calls)  # no per-object request


def test_delete_off_keeps_extras(tmp_path):
    src = source(tmp_path, {"a": b"1"})
    t = MemoryTarget()
    mirror_into(t, src)
    t.files["x"] = (b"x", 0.0)
    res, rec = run_pass(make_cfg(tmp_path, [src]), t, src, delete=False)
    assert res.extra == res.kept_extra == 1 and res.deleted == 0 and res.clean
    assert rec.changes("delete") == []


def test_extra_directory_is_one_tree_delete_counting_its_contents(tmp_path):
    src = source(tmp_path, {"keep/a": b"1"})
    t = LocalTarget("local", tmp_path / "mirror")
    t.open()
    (tmp_path / "mirror/keep").mkdir(parents=True)
    os.link(src.path / "keep/a", tmp_path / "mirror/keep/a")
    for rel in ("old/x", "old/sub/y", "old/sub/z"):
        (tmp_path / "mirror" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mirror" / rel).write_bytes(b"o")
    cfg = make_cfg(tmp_path, [src], max_delete=10)
    res, rec = run_pass(cfg, t, src)
    assert res.extra == res.deleted == 5             # old/, old/x, old/sub/, old/sub/y, old/sub/z
    assert [(c.path, c.tree) for c in rec.changes("delete")] == [("old", True)]


def test_dest_excludes_other_sources_and_meta_are_left_alone(tmp_path):
    up = source(tmp_path, {"a": b"1"}, name="up", dest="site")
    other = source(tmp_path, {"o": b"2"}, name="other", dest="site/nested")
    cfg = make_cfg(tmp_path, [up, other], max_delete=100)
    t = MemoryTarget()
    mirror_into(t, up, dest="site")
    t.files["site/nested/o"] = (b"2", 0.0)            # belongs to the other source
    t.files["site/cache.tmp"] = (b"t", 0.0)           # excluded at the source: not ours to delete
    t.files["elsewhere"] = (b"e", 0.0)                # outside this source's dest
    t.files["site/stray"] = (b"s", 0.0)
    up = SourceConfig(up.name, up.path, up.targets, exclude=("*.tmp",), dest="site")
    cfg = make_cfg(tmp_path, [up, other], max_delete=100)
    res, rec = run_pass(cfg, t, up)
    assert res.extra == 1 and [c.path for c in rec.changes("delete")] == ["stray"]
    assert res.missing == res.changed == 0


# ---------------------------------------------------------------- refusing to delete

def test_max_delete_count_and_percent(tmp_path):
    src = source(tmp_path, {f"f{i}": b"x" for i in range(8)})
    t = MemoryTarget()
    mirror_into(t, src)
    t.files.update({"x1": (b"", 0.0), "x2": (b"", 0.0)})
    res, rec = run_pass(make_cfg(tmp_path, [src], max_delete=1), t, src)
    assert res.refused_deletes == 2 and not res.clean and rec.changes("delete") == []
    assert "refusing to delete 2 entries" in res.delete_refusal
    assert "[reconcile] max_delete = 1" in res.delete_refusal
    res, rec = run_pass(make_cfg(tmp_path, [src], max_delete=0, max_delete_percent=10.0), t, src)
    assert res.refused_deletes == 2 and "2 of 10 entries (20.0%)" in res.delete_refusal
    res, rec = run_pass(make_cfg(tmp_path, [src], max_delete=0, max_delete_percent=20.0), t, src)
    assert res.deleted == 2 and res.clean


def test_empty_source_root_refuses_but_still_reports(tmp_path):
    src = source(tmp_path, {})
    t = MemoryTarget()
    t.files["a"] = (b"1", 0.0)
    res, rec = run_pass(make_cfg(tmp_path, [src]), t, src)
    assert res.refused_deletes == 1 and "is empty (unmounted?)" in res.delete_refusal
    assert rec.calls == []


def test_listing_error_refuses_deletes_and_is_an_error(tmp_path):
    from mirrord.errors import RetryableError

    src = source(tmp_path, {"a": b"1"})
    t = MemoryTarget()
    t.files["zz"] = (b"1", 0.0)
    t.fail_with = RetryableError("connection refused")
    res, rec = run_pass(make_cfg(tmp_path, [src]), t, src)
    assert not res.complete and "connection refused" in res.errors[0]
    assert rec.changes("delete") == []


def test_stop_event_ends_the_pass_without_deletes(tmp_path):
    src = source(tmp_path, {"a": b"1"})
    t = MemoryTarget()
    t.files["zz"] = (b"1", 0.0)
    stop = threading.Event()
    stop.set()
    res, rec = run_pass(make_cfg(tmp_path, [src]), t, src, stop=stop)
    assert not res.complete and rec.changes("delete") == []


def test_file_created_at_the_source_during_the_pass_is_not_deleted(tmp_path):
    src = source(tmp_path, {"a": b"1"})
    t = MemoryTarget()
    t.files["late"] = (b"old", 0.0)                   # extra when the walk passes 'late'
    rec = Recorder()

    def emit(changes):                                # the repair of 'a' goes out first...
        rec.emit(changes)
        (src.path / "late").write_bytes(b"new")       # ...while a user writes 'late'

    res = reconcile_pass(make_cfg(tmp_path, [src]), t, src, emit=emit,
                         emit_deletes=rec.emit_deletes)
    assert res.extra == 1 and res.reappeared == 1 and res.deleted == 0
    assert rec.changes("delete") == []


def test_unreadable_source_directory_refuses_all_deletes(tmp_path):
    """As an unprivileged user (root reads everything), a mode-000 directory cannot be listed:
    the probe imports what it needs as root, then drops to nobody and runs the pass."""
    base = Path(tempfile.mkdtemp(prefix="mirrord-unreadable-"))
    try:
        os.chmod(base, 0o755)
        script = base / "probe.py"
        script.write_text(_PROBE)
        for rel in ("src/ok/a", "src/secret/b"):
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_bytes(b"data")
        os.chmod(base / "src/secret", 0)
        res = subprocess.run([sys.executable, str(script), str(base)], capture_output=True,
                             text=True, timeout=60, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["unreadable"] == [["secret", "Permission denied"]]
        assert doc["deleted"] == 0 and doc["refused_deletes"] == 2  # secret/b and the stray
        assert "could not be read" in doc["delete_refusal"] and doc["deletes_emitted"] == 0
        assert doc["missing"] == 0
    finally:
        os.chmod(base / "src/secret", 0o755)
        subprocess.run(["rm", "-rf", str(base)], check=False)


_PROBE = """
import json, os, sys
from pathlib import Path
from mirrord.config import Config, MirrordSettings, ReconcileConfig, SourceConfig
from mirrord.reconcile import reconcile_pass
from mirrord.targets.memory import MemoryTarget
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
base = Path(sys.argv[1])
src = SourceConfig("up", base / "src", ("memory",))
cfg = Config(base / "x.ini", MirrordSettings(state_dir=base / "state"), (src,), {},
             ReconcileConfig(), None)
t = MemoryTarget()
mtime = (base / "src/ok/a").stat().st_mtime
t.files.update({"ok/a": (b"data", mtime), "secret/b": (b"data", mtime), "stray": (b"x", 0.0)})
deletes = []
res = reconcile_pass(cfg, t, src, emit=lambda c: None, emit_deletes=deletes.extend)
doc = res.to_state()
doc["deletes_emitted"] = len(deletes)
print(json.dumps(doc))
"""


# ---------------------------------------------------------------- the shipper is state-based

def test_put_for_a_file_deleted_at_the_source_meanwhile_becomes_a_delete(tmp_path):
    """A pass proposes 'put x'; x is deleted before a worker runs: x must not come back."""
    src = source(tmp_path, {"x": b"1", "y": b"2"})
    t = MemoryTarget()
    t.files["x"] = (b"stale", 0.0)
    journal = Journal(tmp_path / "journal.db", {"up": ("memory",)})
    journal.enqueue([Change("up", "x", "put", targets=("memory",)),
                     Change("up", "y", "put", targets=("memory",))])
    os.unlink(src.path / "x")
    shipper = Shipper({"memory": t}, [src], {"memory": 1})
    try:
        outcomes = shipper.run_ops(t, journal.claim("memory", 10))
    finally:
        shipper.shutdown()
    journal.ack(outcomes)
    assert sorted((o.op.path, o.shipped_kind) for o in outcomes) == [("x", "delete"), ("y", "put")]
    assert set(t.files) == {"y"}
    journal.close()


# ---------------------------------------------------------------- status document, progress

def test_the_summary_document_has_one_shape(tmp_path):
    from mirrord.reconcile.result import COUNTS, PassSummary, state_counts

    src = source(tmp_path, {"a": b"1"})
    t = MemoryTarget()
    res, _ = run_pass(make_cfg(tmp_path, [src]), t, src)
    summary = PassSummary("memory", "schedule", started_at=123.0)
    summary.add(res)
    summary.finish(0.5)
    doc = summary.to_state()
    assert doc["at"] == 123.0 and doc["missing"] == 1 and doc["reason"] == "schedule"
    assert doc["delete_refusal"] == [] and doc["finished_at"] >= 123.0
    assert set(COUNTS) <= set(doc) and "would_send" not in doc
    assert state_counts(doc)["missing"] == 1
    # a record from before this shape (the daemon's, counts nested) still reads
    assert state_counts({"counts": {"compared": 3, "missing": 1}}) == {"compared": 3, "missing": 1}
    json.dumps(doc)


def test_a_dry_run_with_differences_is_not_in_sync():
    from mirrord.reconcile.result import PassSummary

    assert PassSummary("t", dry_run=True).in_sync
    assert not PassSummary("t", dry_run=True, missing=1).in_sync
    assert not PassSummary("t", dry_run=True, deleted=2).in_sync
    assert PassSummary("t", dry_run=True, extra=2, kept_extra=2).in_sync   # delete off
    assert PassSummary("t", missing=1).in_sync              # repaired by the pass
    assert not PassSummary("t", errors=["x"]).in_sync


def test_progress_draws_only_on_a_terminal():
    quiet = io.StringIO()
    Progress(quiet).update("t", 10, missing=1)
    assert quiet.getvalue() == ""

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    ticks = iter([0.0, 2.0, 2.0])
    p = Progress(tty, clock=lambda: next(ticks))
    p.update("local compared", 1000, missing=3, shipped=2)
    assert "local compared: 1,000 (500/s)  missing 3  shipped 2" in tty.getvalue()
    p.close()
    assert tty.getvalue().endswith("\r")
    assert format_line("x", 0, 0.0, {}) == "x: 0 (0/s)  0s"


# ---------------------------------------------------------------- the daemon lock


def test_the_daemon_lock_is_read_without_taking_it(tmp_path):
    from mirrord import locks

    assert locks.holder(tmp_path, locks.DAEMON) is None
    with locks.take(tmp_path, locks.DAEMON):
        assert locks.holder(tmp_path, locks.DAEMON) is not None
    assert locks.holder(tmp_path, locks.DAEMON) is None
