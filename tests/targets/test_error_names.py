"""What a failed op on a local or rsync target says: the path it was asked for, relative
to the target, and the cause, never the name of mirrord's staging file.

A put into a directory made immutable (chattr +i: refused even to root, which chmod
does not stop) failed with `EPERM: Operation not permitted: b'/mirror/.mirrord/tmp/tmpq8x1'`
on the local target, a new random name per file (rsync: its --temp-dir names). So the
pipeline's one log line per distinct error and reconcile's one line per cause were one
line per file. Each op is checked: put, mkdir, move, set_meta, delete, keep.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess

import pytest

from mirrord.errors import NotFound, cause_of
from mirrord.targets.model import SyncItem
from mirrord.trash.model import stamp_of
from tests.targets.conftest import make_target

STAMP = stamp_of(1_700_000_000.0)
STAGING = re.compile(r"\.mirrord/(rsync-)?tmp/\w|\.mirrord-stage-|/proc/self/fd/")


@contextlib.contextmanager
def immutable(path):
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def target_root(t) -> str:
    return str(t.root) if t.type == "local" else os.fsdecode(t.root)


@pytest.fixture(params=["local", "rsync"])
def opened(request, tmp_path):
    t = make_target(request.param, request, tmp_path)
    t.open()
    yield t
    t.close()


def failure(call) -> str:
    try:
        call()
    except NotFound:
        raise
    except Exception as exc:  # noqa: BLE001 - the error text is what is checked
        return str(exc)
    raise AssertionError("no error")


def test_each_op_below_an_immutable_directory_names_its_path_not_a_temp_file(opened, tmp_path):
    t = opened
    src = tmp_path / "f"
    src.write_bytes(b"data")
    for rel in ("d/old", "d/gone", "d/meta", "mv"):
        t.put(rel, str(src), size=4, mtime=1.0)
    t.mkdir("d/sub")
    t.put("d/sub/x", str(src), size=4, mtime=1.0)
    root = target_root(t)
    with immutable(os.path.join(root, "d")):
        said = [
            ("d/new", failure(lambda: t.put("d/new", str(src), size=4, mtime=2.0))),
            ("d/old", failure(lambda: t.put("d/old", str(src), size=4, mtime=2.0))),
            ("d/m", failure(lambda: t.mkdir("d/m"))),
            ("d/mv", failure(lambda: t.move("mv", "d/mv"))),
            ("d/gone", failure(lambda: t.delete("d/gone"))),
            ("d/sub", failure(lambda: t.delete("d/sub", tree=True))),
            ("d/meta", failure(lambda: t.keep("d/meta", stamp=STAMP, coming="absent"))),
        ]
        results = t.sync([SyncItem(p, "file", str(src), 4, 3.0) for p in ("d/s1", "d/s2")])
    with immutable(os.path.join(root, "d/meta")):
        said.append(("d/meta", failure(lambda: t.set_meta("d/meta", mode=0o600, mtime_ns=5))))
    for path, text in said:
        assert not STAGING.search(text), (path, text)
        assert repr(path) in text, (path, text)
        assert "Operation not permitted" in text, (path, text)
    texts = [str(r.error) for r in results]
    assert all(r.error is not None for r in results), texts
    assert not any(STAGING.search(s) for s in texts), texts
    # one cause: the same text once each file's own path is left out (grouping's key)
    assert cause_of(texts[0], "d/s1") == cause_of(texts[1], "d/s2"), texts
    assert "'d/s1'" in texts[0] and "'d/s2'" in texts[1], texts
