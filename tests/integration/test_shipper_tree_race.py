"""A tree removal and deletes below it, on the real Journal, Shipper and LocalTarget: the
mirror ends up equal to the source whatever the workers take.

Found by the churn test (inotify, under load; `target local is not exact: {'extra':
['w100-01986']}`: an empty directory that no shipped row named). The trace of a run showed
the shape: `rm -r P` at the source turns an old row of P (a mkdir, a chmod) into P's tree
removal and adds newer rows for P/sub and the files in it. The journal handed the files'
deletes to one worker while another ran P's rmtree: it checked only the NEWEST barrier over
them (P/sub's, not in flight). rmtree listed P/sub, a delete took a file from under it,
rmtree stopped at that FileNotFoundError, LocalTarget took it for "already gone"; the
second try did the same with the next file; P's removal was recorded as done, P/sub's
removed P/sub, and P stayed on the mirror, empty. Here each of the other worker's deletes
is made to land right after rmtree lists P/sub (os.scandir wrapped): no timing is involved.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.shipper import Shipper
from mirrord.targets.local import LocalTarget

S, T = "up", "local"


def _drain(j: Journal, shipper: Shipper, target: LocalTarget) -> None:
    for _ in range(20):
        ops = j.claim(T, 100)
        if not ops:
            break
        j.ack(shipper.run_ops(target, ops))
    assert j.claim(T, 100) == []


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not str(p.relative_to(root)).startswith(".mirrord"))


class _Listing:
    """What os.scandir returns, over entries read before the other worker's delete lands."""

    def __init__(self, entries):
        self.entries = entries

    def __enter__(self):
        return iter(self.entries)

    def __exit__(self, *exc):
        return False


def test_a_tree_removal_beside_deletes_below_it_leaves_nothing_behind(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "P" / "sub").mkdir(parents=True)
    for name in ("x1.jpg", "x2.jpg"):
        (src / "P" / "sub" / name).write_bytes(b"data")
    target = LocalTarget(T, tmp_path / "mirror", fsync=False)
    target.open()
    j = Journal(tmp_path / "journal.db", {S: (T,)})
    shipper = Shipper({T: target}, [SourceConfig(S, src, (T,))], {T: 2})
    try:
        j.enqueue([Change(S, "P", "mkdir"), Change(S, "P/sub", "mkdir"),
                   Change(S, "P/sub/x1.jpg", "put"), Change(S, "P/sub/x2.jpg", "put")])
        _drain(j, shipper, target)
        assert _tree(Path(target.root)) == _tree(src)

        os.chmod(src / "P", 0o750)
        j.enqueue([Change(S, "P", "attr")])            # P's row: older than what follows
        shutil.rmtree(src / "P")                       # and its events, in the kernel's order
        j.enqueue([Change(S, "P/sub/x1.jpg", "delete"), Change(S, "P/sub/x2.jpg", "delete"),
                   Change(S, "P/sub", "delete", tree=True), Change(S, "P", "delete", tree=True)])
        removal = j.claim(T, 1)
        assert [op.path for op in removal] == ["P"]   # in flight on one worker
        other = j.claim(T, 100)                        # what a free worker may take meanwhile

        pending = {op.path: op for op in other}
        landed = []
        real = os.scandir

        def scandir(*args, **kwargs):
            with real(*args, **kwargs) as it:
                entries = list(it)
            for e in entries[:1]:   # the other worker deletes what rmtree is about to reach
                op = pending.pop(f"P/sub/{e.name}", None)
                if op is not None:
                    landed.extend(shipper.run_ops(target, [op]))
            return _Listing(entries)

        monkeypatch.setattr(os, "scandir", scandir)
        done = shipper.run_ops(target, removal)
        monkeypatch.undo()
        rest = shipper.run_ops(target, list(pending.values())) if pending else []
        j.ack(landed + rest + done)
        _drain(j, shipper, target)
        assert _tree(Path(target.root)) == _tree(src) == []
    finally:
        j.close()
        target.close()
