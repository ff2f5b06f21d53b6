"""How the rsync target's keep batch reaches the host (mirrord.targets.rsync.trash.keep_script,
issue 17: what keeping costs), against a real sshd.

A small batch rides on the command line (one exec on the host), a large one on stdin
through xargs; both must answer alike. A path with nothing at it is answered without
making the trash, and a trash that cannot be made fails only the requests that keep.
"""

from __future__ import annotations

import os

import pytest

from mirrord.targets.rsync import keep_script as kscript
from mirrord.targets.rsync import trash as rtrash
from mirrord.trash.model import TRASH, trash_rel, stamp_of
from tests.targets.test_rsync_trash import count_runs, root, t, write  # noqa: F401 - t: fixture

STAMP = stamp_of(1_700_000_000.25)


def test_a_small_batch_is_on_the_command_line_and_a_large_one_on_stdin():
    small, data = kscript.keep_script([b"0 file " + STAMP.encode() + b" ./a b'c"])
    assert data == b"" and small.startswith(b"exec sh -c '") and b"xargs" not in small
    assert b"'0 file " + STAMP.encode() + b" ./a b'\"'\"'c'" in small   # quoted, one word
    many = [b"%d file %s ./%s" % (i, STAMP.encode(), b"x" * 100) for i in range(400)]
    large, data = kscript.keep_script(many)
    assert large.startswith(b"xargs -0 -r sh -c '") and b"x" * 100 not in large
    assert data == b"".join(r + b"\0" for r in many)


@pytest.mark.parametrize("pad", [0, 120], ids=["command-line", "stdin"])
def test_both_ways_keep_alike_in_one_round_trip(t, monkeypatch, pad):
    """`pad` makes the names long enough (400 of them) to go past ARGS_LIMIT to stdin."""
    name = "n" * pad
    write(t, f"d/{name}over", b"old")
    write(t, f"d/{name}gone", b"gone bytes")
    requests = [(f"d/{name}over", STAMP, "file"), (f"d/{name}gone", STAMP, "absent")]
    requests += [(f"d/{name}new{i}", STAMP, "file") for i in range(400)]
    records = sum(len(p) + 40 for p, _, _ in requests)
    assert (records > kscript.ARGS_LIMIT) == bool(pad)
    scripts = count_runs(t, monkeypatch)
    assert t.keep_many(requests) == [None] * len(requests)
    assert len(scripts) == 1 and (b"xargs" in scripts[0]) == bool(pad)
    assert (root(t) / trash_rel(STAMP, "overwritten", f"d/{name}over")).read_bytes() == b"old"
    assert (root(t) / trash_rel(STAMP, "deleted", f"d/{name}gone")).read_bytes() == b"gone bytes"
    assert not (root(t) / f"d/{name}gone").exists()
    kept = {p.name for p in (root(t) / TRASH).rglob("*") if p.is_file()}
    assert kept == {f"{name}over", f"{name}gone"}


def test_new_paths_are_answered_without_making_the_trash(t):
    write(t, "d/there", b"x")   # a parent that exists, asked as a parent is ('dir')
    got = rtrash.RsyncTrash(t).keep_batch([("d", STAMP, "dir"), ("d/new", STAMP, "file"),
                                           ("e/f/new", STAMP, "file"), ("gone", STAMP, "absent")])
    assert got == [0, 0, 0, 0]
    assert not (root(t) / TRASH).exists()


def test_a_trash_that_cannot_be_made_fails_only_what_keeps(t):
    os.makedirs(root(t) / ".mirrord", exist_ok=True)
    (root(t) / TRASH).write_bytes(b"a file where the trash goes")
    write(t, "over", b"old")
    errors = t.keep_many([("over", STAMP, "file"), ("new", STAMP, "file")])
    assert errors[0] is not None and "cannot keep 'over'" in str(errors[0])
    assert errors[1] is None
    assert (root(t) / "over").read_bytes() == b"old"
