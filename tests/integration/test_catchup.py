"""Catch-up: a streaming merge of a real source walk with the `shipped` table of a real
journal. What it proposes for new, changed and deleted paths, and when it refuses to
delete (an empty source root, an unreadable directory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mirrord import catchup as catchup_mod
from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper
from mirrord.targets.memory import MemoryTarget

ROOT = Path(__file__).resolve().parents[2]
S = "up"


class Env:
    def __init__(self, tmp_path: Path, targets=("t",), exclude=()):
        self.root = tmp_path / "src"
        self.root.mkdir()
        self.db = tmp_path / "state" / "journal.db"
        self.source = SourceConfig(S, self.root, tuple(targets), exclude=tuple(exclude))
        self.journal = Journal(self.db, {S: tuple(targets)})
        self.targets = {t: MemoryTarget(t) for t in targets}
        self.shipper = Shipper(self.targets, [self.source], {t: 1 for t in targets})

    def files(self, files: dict[str, bytes]) -> None:
        for rel, data in files.items():
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).write_bytes(data)

    def catch_up(self, targets=None, **kw):
        calls: list[list[Change]] = []
        res = catch_up(self.db, self.source, list(targets or self.targets), calls.append, **kw)
        return res, calls

    def proposals(self, targets=None, **kw) -> set[tuple]:
        _res, calls = self.catch_up(targets, **kw)
        return {(c.targets[0], c.kind, c.path, c.tree) for batch in calls for c in batch}

    def apply(self, targets=None, **kw):
        """Catch up, then ship every proposal (as the daemon would)."""
        res, calls = self.catch_up(targets, **kw)
        for batch in calls:
            self.journal.enqueue(batch)
        for t, target in self.targets.items():
            while ops := self.journal.claim(t, 1000, now=1e12):
                self.journal.ack(self.shipper.run_ops(target, ops))
        return res

    def close(self):
        self.shipper.shutdown()
        self.journal.close()


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.close()


def test_a_new_tree_is_proposed_whole(env):
    env.files({"a": b"1", "d/x": b"22", "d/s/y": b"333"})
    res, calls = env.catch_up()
    got = {(c.kind, c.path, c.size) for batch in calls for c in batch}
    assert got == {("put", "a", 1), ("mkdir", "d", 0), ("put", "d/x", 2), ("mkdir", "d/s", 0),
                   ("put", "d/s/y", 3)}
    assert all(c.targets == ("t",) for batch in calls for c in batch)
    assert res.files == 3 and res.proposed == {"put": 3, "mkdir": 2}
    assert res.refused_deletes == 0


def test_nothing_is_proposed_once_everything_is_shipped(env):
    env.files({"a": b"1", "d/x": b"22", "d/s/y": b"333"})
    env.apply()
    assert env.targets["t"].files.keys() == {"a", "d/x", "d/s/y"}
    assert env.proposals() == set()


def test_new_changed_and_deleted_paths_are_found(env):
    env.files({"keep": b"k", "change": b"c", "gone": b"g", "d/x": b"x", "d/s/y": b"y",
               "e/z": b"z"})
    env.apply()
    (env.root / "change").write_bytes(b"changed!")
    (env.root / "new").write_bytes(b"n")
    os.unlink(env.root / "gone")
    for rel in ("d/s/y", "d/x"):
        os.unlink(env.root / rel)
    os.rmdir(env.root / "d" / "s")
    os.rmdir(env.root / "d")
    assert env.proposals() == {
        ("t", "put", "change", False), ("t", "put", "new", False),
        ("t", "delete", "gone", False), ("t", "delete", "d", True), ("t", "delete", "d/x", False),
        ("t", "delete", "d/s", True), ("t", "delete", "d/s/y", False)}
    env.apply()
    assert env.proposals() == set()
    assert {p: d for p, (d, _m) in env.targets["t"].files.items()} == {
        "keep": b"k", "change": b"changed!", "new": b"n", "e/z": b"z"}


def test_a_touched_file_of_the_same_size_is_resent(env):
    env.files({"f": b"abc"})
    env.apply()
    os.utime(env.root / "f", ns=(1, 1))
    assert env.proposals() == {("t", "put", "f", False)}


def test_file_and_directory_swapping_at_one_path(env):
    env.files({"p": b"file", "q/inner": b"i"})
    env.apply()
    os.unlink(env.root / "p")
    env.files({"p/inside": b"now a dir"})
    os.unlink(env.root / "q" / "inner")
    os.rmdir(env.root / "q")
    env.files({"q": b"now a file"})
    env.apply()
    assert env.proposals() == set()
    assert {p: d for p, (d, _m) in env.targets["t"].files.items()} == {
        "p/inside": b"now a dir", "q": b"now a file"}


def test_names_that_sort_around_the_slash_merge_in_step(env):
    # '-' and '.' sort before '/', '0' after it: the walk and the table must agree
    names = ["a-b", "a.c", "a/x", "a/y/z", "a0", "a!", "b", "a/-", "a/.h", "é", "a b"]
    env.files({n: n.encode() for n in names})
    odd = os.fsencode(str(env.root)) + b"/caf\xe9"
    with open(odd, "wb") as fh:
        fh.write(b"latin-1 name")
    env.apply()
    assert env.proposals() == set()
    assert len(env.targets["t"].files) == len(names) + 1


def test_an_empty_source_root_with_shipped_rows_deletes_nothing(env):
    env.files({"a": b"1", "d/x": b"2"})
    env.apply()
    for rel in ("a", "d/x"):
        os.unlink(env.root / rel)
    os.rmdir(env.root / "d")   # the root is now empty: an unmounted mount point looks like this
    res, calls = env.catch_up()
    assert calls == [] and res.refused_deletes == 3
    assert res.files == 0


def test_an_empty_directory_only_source_refuses_deletes_too(env):
    env.files({"a": b"1"})
    env.apply()
    os.unlink(env.root / "a")
    (env.root / "lost+found").mkdir()
    res, calls = env.catch_up()
    assert not any(c.kind == "delete" for batch in calls for c in batch)
    assert res.refused_deletes == 1


def test_a_fresh_install_with_an_empty_source_proposes_nothing(env):
    res, calls = env.catch_up()
    assert calls == [] and res.refused_deletes == 0


def test_excluded_paths_are_never_proposed(tmp_path):
    env = Env(tmp_path, exclude=("*.tmp", "cache"))
    try:
        env.files({"a.tmp": b"t", "cache/x": b"c", "ok": b"o", "d/b.tmp": b"t"})
        assert env.proposals() == {("t", "put", "ok", False), ("t", "mkdir", "d", False)}
    finally:
        env.close()


def test_a_shipped_path_excluded_since_is_neither_deleted_nor_sent(tmp_path):
    """An exclude pattern added between two runs: what it now excludes stays on the
    target as a reconcile leaves it (its listings skip excluded paths); before, the
    catch-up's delete found the file at the source and the shipper put it back."""
    env = Env(tmp_path)
    try:
        env.files({"thumb/t.jpg": b"t", "x.bak": b"b", "ok": b"o"})
        env.apply()
        env.source = SourceConfig(S, env.root, ("t",), exclude=("thumb/", "*.bak"))
        (env.root / "thumb" / "t.jpg").write_bytes(b"changed, excluded")
        res, calls = env.catch_up()
        assert [c for batch in calls for c in batch] == []
        assert res.excluded == 3   # thumb/, thumb/t.jpg, x.bak
        env.shipper.sources[S] = env.source   # a row queued before the pattern was added
        env.journal.enqueue([Change(S, "thumb/t.jpg", "put"), Change(S, "x.bak", "delete")])
        (op1, op2) = env.journal.claim("t", 10, now=1e12)
        outs = env.shipper.run_ops(env.targets["t"], [op1, op2])
        assert [o.shipped_kind for o in outs] == ["skip", "skip"]
        assert env.targets["t"].read("thumb/t.jpg") == b"t"
        assert env.targets["t"].read("x.bak") == b"b"
    finally:
        env.close()


def test_each_target_gets_only_what_it_lacks(tmp_path):
    env = Env(tmp_path, targets=("t", "u"))
    try:
        env.files({"a": b"1", "d/b": b"2"})
        env.apply(targets=["t"])
        assert env.proposals() == {("u", "put", "a", False), ("u", "mkdir", "d", False),
                                   ("u", "put", "d/b", False)}
    finally:
        env.close()


def test_targets_without_directories_get_no_mkdir(env):
    env.files({"d/x": b"1"})
    assert env.proposals(directories={"t": False}) == {("t", "put", "d/x", False)}


def test_proposals_stream_in_chunks(env, monkeypatch):
    monkeypatch.setattr(catchup_mod, "CHUNK", 7)
    env.files({f"f{i:03d}": b"x" for i in range(30)})
    _res, calls = env.catch_up()
    assert sum(len(c) for c in calls) == 30
    assert all(len(c) <= 7 for c in calls) and len(calls) == 5


def test_a_stop_request_ends_the_walk(env):
    env.files({f"f{i}": b"x" for i in range(10)})
    stop = threading.Event()
    stop.set()
    _res, calls = env.catch_up(stop=stop)
    assert calls == []


def test_catch_up_reads_while_the_journal_is_open_for_writing(env):
    env.files({"a": b"1"})
    env.journal.enqueue([Change(S, "zzz", "put")])   # the writer holds the database open
    res, _calls = env.catch_up()
    assert res.proposed == {"put": 1}


_UNREADABLE_SCRIPT = r"""
import json, sys
from pathlib import Path
from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
calls = []
res = catch_up(Path(sys.argv[1]), SourceConfig("up", Path(sys.argv[2]), ("t",)), ["t"],
               calls.append)
print(json.dumps({"changes": sorted([c.kind, c.path] for b in calls for c in b),
                  "refused": res.refused_deletes, "unreadable": res.unreadable}))
"""


def test_deletes_below_an_unreadable_directory_are_refused(env):
    env.files({"locked/a": b"1", "locked/sub/b": b"2", "open/c": b"3", "gone": b"4"})
    env.apply()
    os.unlink(env.root / "gone")
    os.chmod(env.root / "locked", 0)
    try:
        res = subprocess.run(   # root reads every directory: drop the capabilities that allow it
            ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", sys.executable,
             "-c", _UNREADABLE_SCRIPT, str(env.db), str(env.root)],
            capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        os.chmod(env.root / "locked", 0o755)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    # chmod 0 is itself a change of the directory's mode: proposed like any other
    assert doc["changes"] == [["delete", "gone"], ["mkdir", "locked"]]
    assert doc["refused"] == 3       # locked/a, locked/sub/, locked/sub/b
    assert [u[0] for u in doc["unreadable"]] == ["locked"]


def test_a_source_of_directories_only_raises_no_false_alarm(env, caplog):
    (env.root / "d").mkdir()
    env.apply()                               # only 'd/' is recorded as shipped
    caplog.clear()
    res, calls = env.catch_up()
    assert calls == [] and res.refused_deletes == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


# ------------------------------------------------------------------ the max_delete cap


@pytest.mark.parametrize("cap,refused", [((5, None), True), ((20, None), False),
                                         ((10, 25.0), True), ((10, 50.0), False)])
def test_the_cap_refuses_every_delete_of_a_target_over_it(env, cap, refused):
    """A start or a root's return found most of the source gone (a breaker's empty tmpfs
    mounted in the root's place, one upload written there: 2,200 files of the mirror went).
    Over [reconcile] max_delete (a count, or a percentage of what was shipped), the
    target gets no delete at all, as a reconcile pass refuses; under it, every one."""
    env.files({f"f{i}.jpg": b"x" for i in range(20)})
    env.apply()
    for i in range(8):                       # 8 of 20 gone: 40 %
        (env.root / f"f{i}.jpg").unlink()
    res, calls = env.catch_up(cap=cap)
    deletes = [c for batch in calls for c in batch if c.kind == "delete"]
    assert (res.refused_deletes, len(deletes)) == ((8, 0) if refused else (0, 8))


def test_no_cap_is_the_live_rescan_rule(env):
    """Without a cap (an overflow's rescan follows the live stream) every delete goes."""
    env.files({f"f{i}.jpg": b"x" for i in range(20)})
    env.apply()
    for i in range(19):
        (env.root / f"f{i}.jpg").unlink()
    res, calls = env.catch_up()
    assert res.refused_deletes == 0
    assert len([c for batch in calls for c in batch if c.kind == "delete"]) == 19


def test_the_cap_says_how_many_paths_the_source_lacks_not_a_sum_over_targets(tmp_path, caplog):
    """A breaker: 94 paths gone, three targets over the cap; the hold said 'lacked at
    start 280 shipped paths' (the sum over the targets). The ERROR line is key=value and
    its advice is the hold's (resume-deletes), not reconcile's (--no-delete)."""
    env = Env(tmp_path, targets=("t1", "t2", "t3"))
    env.files({f"f{i}.jpg": b"x" for i in range(20)})
    env.apply()
    for i in range(12):
        (env.root / f"f{i}.jpg").unlink()
    with caplog.at_level("ERROR", logger="mirrord.catchup"):
        res, _calls = env.catch_up(cap=(5, None))
    assert sorted(res.capped) == ["t1", "t2", "t3"]
    assert res.capped_paths == 12 and res.refused_deletes == 36
    lines = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(lines) == 3 and all(line.startswith("msg=") for line in lines), lines
    assert all("resume-deletes --source up" in line and "--no-delete" not in line
               for line in lines), lines
