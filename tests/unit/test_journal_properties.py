"""Property test of the journal's coalescing rules (issue 7).

For any sequence of file-system operations on a small set of paths, applied to a
real source directory and fed to the Journal the way the daemon feeds it (Change /
enqueue_move, subtree scans when a directory move falls back), interleaved in any
order with claims, worker runs (Shipper.run_ops, looking at the source when they
run), failures and acks: once everything is drained, the target holds exactly what
the source holds, and the `shipped` record says so too. That is, applying the
coalesced journal gives the same final state as applying every operation in order.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal, Op, Outcome, iter_shipped
from mirrord.shipper import Shipper
from mirrord.targets.memory import MemoryTarget
from mirrord.targets.paths import META_DIR
from mirrord.treewalk import walk
from tests.fakes import memory_or_local_target

S, T = "up", "t"
PATHS = ["a", "b", "d", "e", "d/a", "d/b", "d/f", "e/a", "d/f/a"]
FAR = 1e12   # claim "now": past every backoff

path_st = st.sampled_from(PATHS)
step_st = st.one_of(
    st.tuples(st.just("write"), path_st),
    st.tuples(st.just("delete"), path_st),
    st.tuples(st.just("rename"), path_st, path_st),
    st.tuples(st.just("mkdir"), path_st),
    st.tuples(st.just("rmtree"), path_st),
    st.tuples(st.just("claim"), st.integers(1, 4)),
    st.tuples(st.just("run"), st.integers(0, 3)),
    st.tuples(st.just("fail"), st.integers(0, 3)),
    st.tuples(st.just("ack"), st.integers(0, 3)),
    st.tuples(st.just("scan"), st.integers(0, 3)),
    st.tuples(st.just("catchup")),
    st.tuples(st.just("propose"), st.integers(0, 3)),
)


@dataclass
class World:
    """A source tree, its journal, one target and the work in flight."""

    root: Path
    journal: Journal
    target: object
    shipper: Shipper
    claimed: list[list[Op]] = field(default_factory=list)   # claimed, not yet run
    ran: list[list[Outcome]] = field(default_factory=list)  # run, not yet acked
    scans: list[str] = field(default_factory=list)          # subtree re-sends pending
    proposals: list[list[Change]] = field(default_factory=list)  # catch-up output, not yet recorded
    counter: int = 0

    # -------------------------------------------------- the file system, as a user does it
    def kind(self, rel: str) -> str:
        try:
            mode = os.lstat(self.root / rel).st_mode
        except FileNotFoundError:
            return "absent"
        except NotADirectoryError:
            return "absent"
        return "dir" if stat.S_ISDIR(mode) else "file"

    def parent_ok(self, rel: str) -> bool:
        parent = rel.rpartition("/")[0]
        return not parent or self.kind(parent) == "dir"

    def write(self, rel: str) -> None:
        if not self.parent_ok(rel) or self.kind(rel) == "dir":
            return
        self.counter += 1
        (self.root / rel).write_bytes(f"{rel}#{self.counter}".encode() * (self.counter % 3 + 1))
        self.enqueue([Change(S, rel, "put")])

    def delete(self, rel: str) -> None:
        if self.kind(rel) != "file":
            return
        os.unlink(self.root / rel)
        self.enqueue([Change(S, rel, "delete")])

    def mkdir(self, rel: str) -> None:
        if not self.parent_ok(rel) or self.kind(rel) != "absent":
            return
        os.mkdir(self.root / rel)
        self.enqueue([Change(S, rel, "mkdir")])

    def rmtree(self, rel: str) -> None:
        if self.kind(rel) != "dir":
            return
        changes = []   # what the watcher reports for rm -r: bottom-up deletes
        for dirpath, dirs, files in os.walk(self.root / rel, topdown=False):
            here = Path(dirpath).relative_to(self.root).as_posix()
            changes += [Change(S, f"{here}/{f}", "delete") for f in sorted(files)]
            changes += [Change(S, f"{here}/{d}", "delete", tree=True) for d in sorted(dirs)]
        changes.append(Change(S, rel, "delete", tree=True))
        shutil.rmtree(self.root / rel)
        self.enqueue(changes)

    def rename(self, src: str, dst: str) -> None:
        sk, dk = self.kind(src), self.kind(dst)
        if sk == "absent" or src == dst or dst.startswith(src + "/") or not self.parent_ok(dst):
            return
        if dk == "dir" or (dk == "file" and sk == "dir"):
            return
        os.rename(self.root / src, self.root / dst)
        fallback = self.journal.enqueue_move(S, src, dst, is_dir=sk == "dir")
        if fallback and sk == "dir":
            self.scans.append(dst)

    def enqueue(self, changes: list[Change]) -> None:
        self.journal.enqueue(changes)

    # -------------------------------------------------- the daemon's side
    def claim(self, n: int) -> None:
        ops = self.journal.claim(T, n, now=FAR)
        if ops:
            self.claimed.append(ops)

    def run(self, i: int, *, fail: bool = False) -> None:
        if not self.claimed:
            return
        ops = self.claimed.pop(i % len(self.claimed))
        if fail:
            outcomes = [Outcome(op, error="RetryableError: injected") for op in ops]
        else:
            outcomes = self.shipper.run_ops(self.target, ops)
        assert [o.op for o in outcomes] == ops or sorted(o.op.id for o in outcomes) == sorted(
            op.id for op in ops)
        self.ran.append(outcomes)

    def ack(self, i: int) -> None:
        if not self.ran:
            return
        outcomes = self.ran.pop(i % len(self.ran))
        self.journal.ack(outcomes)
        for out in outcomes:
            if out.rescan:
                self.scans.append(out.op.path)

    def scan(self, i: int) -> None:
        if not self.scans:
            return
        rel = self.scans.pop(i % len(self.scans))
        changes = [Change(S, e.path, "mkdir" if e.is_dir else "put")
                   for e in walk(str(self.root / rel), prefix=rel)]
        self.enqueue(changes)

    def catchup(self) -> None:
        """A catch-up walk now; what it proposes reaches the journal later (a `propose` step)."""
        src = SourceConfig(S, self.root, (T,))
        catch_up(self.journal.path, src, [T], self.proposals.append,
                 directories={T: self.target.features.directories})

    def propose(self, i: int) -> None:
        if self.proposals:
            self.enqueue(self.proposals.pop(i % len(self.proposals)))

    def drain(self) -> None:
        while self.proposals:
            self.propose(0)
        while self.ran:
            self.ack(0)
        while self.claimed:
            self.run(0)
            self.ack(0)
        for _round in range(200):
            while self.scans:
                self.scan(0)
            ops = self.journal.claim(T, 1000, now=FAR)
            if not ops:
                left = self.journal.db.execute("SELECT path, kind, wait_for FROM ops").fetchall()
                assert not left, f"rows left that can never be claimed: {left}"
                if not self.scans:
                    return
                continue
            self.claimed.append(ops)
            self.run(0)
            self.ack(0)
        raise AssertionError("the journal did not drain")


def source_state(root: Path) -> dict[str, bytes | None]:
    """path -> bytes for files, None for directories."""
    out: dict[str, bytes | None] = {}
    for e in walk(str(root)):
        out[e.path] = None if e.is_dir else (root / e.path).read_bytes()
    return out


def target_state(target) -> dict[str, bytes | None]:
    if isinstance(target, MemoryTarget):
        return {p: data for p, (data, _m) in target.files.items()}
    # the target's reserved area (staging, heartbeats) is not part of the mirror
    return {p: v for p, v in source_state(Path(target.root)).items()
            if p.split("/", 1)[0] != META_DIR}


def check_converged(w: World) -> None:
    want = source_state(w.root)
    got = target_state(w.target)
    if isinstance(w.target, MemoryTarget):   # no directories on this target
        want = {p: v for p, v in want.items() if v is not None}
    assert got == want
    rec = {bytes(k).decode(): (size, m) for k, size, m, _t, _mode in iter_shipped(w.journal.db, T, S)}
    files = {e.path: (e.size, e.mtime_ns) for e in walk(str(w.root)) if not e.is_dir}
    assert {k: v for k, v in rec.items() if not k.endswith("/")} == files
    dirs = {e.path + "/" for e in walk(str(w.root)) if e.is_dir}
    assert {k for k in rec if k.endswith("/")} == dirs


def make_target(kind: str, base: Path):
    return memory_or_local_target(kind, T, base)


def play(kind: str, steps, *, world: type[World] = World, target_for=make_target,
         check=check_converged) -> None:
    """Run `steps` on a `world` over the target `target_for(kind, base)` makes, drain it,
    then `check` it (tests/unit/test_exchange_properties.py passes its own three)."""
    with tempfile.TemporaryDirectory(prefix="mirrord-prop-") as tmp:
        base = Path(tmp)
        root = base / "src"
        root.mkdir()
        target = target_for(kind, base)
        jr = Journal(base / "state" / "journal.db", {S: (T,)}, clock=lambda: 1000.0)
        shipper = Shipper({T: target}, [SourceConfig(S, root, (T,))], {T: 1})
        w = world(root, jr, target, shipper)
        try:
            for step in steps:
                name, *args = step
                if name == "fail":
                    w.run(args[0], fail=True)
                else:
                    getattr(w, name)(*args)
            w.drain()
            check(w)
        finally:
            shipper.shutdown()
            jr.close()


PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", ["memory", "local"])
@PROPERTY
@given(steps=st.lists(step_st, max_size=25))
# rm -r d; mkdir d; write d/a -- d/a must wait for the old tree's removal
@example(steps=[("mkdir", "d"), ("claim", 4), ("run", 0), ("ack", 0), ("rmtree", "d"),
                ("claim", 1), ("mkdir", "d"), ("write", "d/a"), ("claim", 4),
                ("run", 1), ("run", 0), ("ack", 0), ("ack", 0)])
# a catch-up proposes "delete d (tree)" while d is gone; d is made again and d/a shipped;
# the stale proposal lands last and clears d on the target: d/a must be sent again
@example(steps=[("write", "a"), ("mkdir", "d"), ("claim", 4), ("run", 0), ("ack", 0),
                ("rmtree", "d"), ("catchup",), ("claim", 4), ("run", 0), ("ack", 0),
                ("mkdir", "d"), ("write", "d/a"), ("claim", 4), ("run", 0), ("ack", 0),
                ("propose", 0)])
def test_coalesced_journal_converges_to_the_source(kind, steps):
    play(kind, steps)


# ----------------------------------------------------------------- the barrier index

_SEGMENTS = st.sampled_from([b"a", b"b", b"a b", b"a-b", b"a.b", b"\xff"])
_PATHS = st.lists(_SEGMENTS, min_size=1, max_size=4).map(b"/".join)


def _covering_by_scan(rows: dict, target: str, path: bytes, own) -> int | None:
    """The definition: the newest other barrier at path or at a directory above it."""
    found = [bid for bid, (t, paths) in rows.items()
             if bid != own and t == target and any(path == p or path.startswith(p + b"/")
                                                   for p in paths)]
    return max(found, default=None)


@given(st.lists(st.tuples(st.sampled_from(["set", "drop"]), st.integers(1, 12),
                          st.sampled_from(["t1", "t2"]),
                          st.lists(_PATHS, min_size=1, max_size=2)), max_size=40),
       _PATHS, st.sampled_from(["t1", "t2"]), st.one_of(st.none(), st.integers(1, 12)))
@settings(max_examples=300, deadline=None)
def test_barrier_index_finds_what_a_scan_finds(steps, path, target, own):
    from mirrord.journal import _Barriers
    index, rows = _Barriers(), {}
    for action, oid, t, paths in steps:
        if action == "set":
            index.set(oid, t, "src", tuple(paths))
            rows[oid] = (t, tuple(paths))
        else:
            index.drop(oid)
            rows.pop(oid, None)
    assert index.covering(target, "src", path, own) == _covering_by_scan(rows, target, path, own)
