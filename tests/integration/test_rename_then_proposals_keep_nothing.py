"""A file renamed, then a comparison run before the rename reached the target: nothing is
kept, on the real Journal and Shipper, catch-up and reconcile, on every target type (memory,
local, rsync over sshd, S3 in 'copy' mode, a versioned bucket), keep_deleted on.

Found by a review: `mv a b` is queued as a move (b's row) and a's delete (its source end,
carrying b: the row's src). A comparison that walks the source after the rename and lists
the target before the move ran (the start's catch-up, a reconcile pass) proposes a put of b
and a delete of a. The delete was recorded over a's delete as a plain one and dropped b, so
it ran without the new name and the trash kept a as 'deleted' although its bytes live on
at b (`mirrord trash` listed a rename, `undelete` made a duplicate). A comparison's delete
keeps the name now (Change.proposed; reconcile's repair); a live delete still drops it
(tests/unit/test_rename_fallback_keeps_nothing.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mirrord.catchup import catch_up
from mirrord.config import SourceConfig
from mirrord.journal import Change, Journal
from mirrord.reconcile import reconcile_pass
from mirrord.shipper import Shipper, serial
from mirrord.trash.keeper import KeepPolicy
from tests.fakes import Clock
from tests.integration.test_dir_rotation_keeps_nothing import drain, exact, kept, target  # noqa: F401
from tests.unit.test_reconcile import make_cfg

S = "up"


@pytest.fixture
def site(tmp_path: Path, target):  # noqa: F811 - the fixture imported above
    """a and c shipped to `target` with keep_deleted on (shipped_site)."""
    yield from shipped_site(tmp_path, target, {name: f"{name}'s bytes\n".encode() * 50
                                               for name in ("a", "c")})


def shipped_site(tmp_path: Path, target, files: dict[str, bytes]):
    """`files` (path -> bytes, each its own mtime, a second apart) and their directories
    shipped to `target` with keep_deleted on; yields (src, journal, shipper, target, cfg,
    source) and closes them after. The journal's clock is a second behind the wall
    clock: a versioned bucket stamps by the server's time."""
    src = tmp_path / "src"
    src.mkdir()
    for n, (rel, data) in enumerate(sorted(files.items())):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
        ns = 1_700_000_000_123_456_789 + n * 10**9
        os.utime(src / rel, ns=(ns, ns))
    source = SourceConfig(S, src, (target.name,))
    j = Journal(tmp_path / "state" / "journal.db", {S: (target.name,)},
                clock=Clock(int(time.time()) - 1))
    shipper = Shipper({target.name: target}, [source], {target.name: 2}, executor=serial,
                      keep={target.name: KeepPolicy(86400.0)})
    dirs = sorted({str(Path(rel).parent) for rel in files} - {"."})
    j.enqueue([Change(S, d, "mkdir") for d in dirs])
    j.enqueue([Change(S, rel, "put") for rel in files])
    drain(j, shipper, target)
    try:
        yield src, j, shipper, target, make_cfg(tmp_path, [source]), source
    finally:
        shipper.shutdown()
        j.close()


def compare(how: str, j: Journal, target, cfg, source) -> list[Change]:
    """What a comparison proposes now: the catch-up's (as at a start) or a reconcile pass's."""
    proposed: list[Change] = []
    if how == "catch-up":
        catch_up(j.path, source, [target.name], proposed.extend)
    else:
        res = reconcile_pass(cfg, target, source, emit=proposed.extend,
                             emit_deletes=proposed.extend, delete=True)
        assert not res.errors, res.errors
    return proposed


def shipped_exactly(src: Path, j: Journal, shipper: Shipper, target) -> list[tuple[str, int]]:
    """Every recorded op shipped; the target then mirrors `src` exactly. What it kept."""
    drain(j, shipper, target)
    assert exact(src, target) == {}
    return kept(target)


@pytest.mark.parametrize("how", ["catch-up", "reconcile"])
@pytest.mark.parametrize("order", ["as-proposed", "deletes-first", "puts-first"])
def test_a_move_then_a_comparison_keeps_nothing(site, how, order):
    src, j, shipper, target, cfg, source = site
    os.rename(src / "a", src / "b")
    assert j.enqueue_move(S, "a", "b", is_dir=False) == []   # nothing pending: a move
    proposed = compare(how, j, target, cfg, source)
    assert {(c.kind, c.path) for c in proposed} >= {("delete", "a"), ("put", "b")}
    if order != "as-proposed":
        proposed.sort(key=lambda c: (c.kind == "delete") == (order == "puts-first"))
    for ch in proposed:            # one by one, as the chunks of a long walk arrive
        j.enqueue([ch])
    assert shipped_exactly(src, j, shipper, target) == [], "a rename was kept as a delete"


@pytest.mark.parametrize("how", ["catch-up", "reconcile"])
def test_a_rename_fallback_then_a_comparison_keeps_nothing(site, how):
    """a had work pending (an attr): the rename is a delete of a carrying b and a put of b."""
    src, j, shipper, target, cfg, source = site
    os.chmod(src / "a", 0o600)
    j.enqueue([Change(S, "a", "attr")])
    os.rename(src / "a", src / "b")
    assert j.enqueue_move(S, "a", "b", is_dir=False) == [target.name]
    j.enqueue(compare(how, j, target, cfg, source))
    assert shipped_exactly(src, j, shipper, target) == [], "a rename was kept as a delete"


@pytest.mark.parametrize("how", ["catch-up", "reconcile"])
def test_a_file_really_deleted_is_still_kept(site, how):
    """The other side of the kind: c deleted (no rename), the comparison's delete keeps it."""
    src, j, shipper, target, cfg, source = site
    data = (src / "c").read_bytes()
    os.unlink(src / "c")
    j.enqueue(compare(how, j, target, cfg, source))
    assert shipped_exactly(src, j, shipper, target) == [("c", len(data))]
