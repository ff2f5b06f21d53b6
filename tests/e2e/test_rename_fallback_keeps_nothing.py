"""A rename the journal sends as a delete and a put keeps nothing; a real loss stays kept.

Two renames back to back (a -> b -> c faster than the first move is shipped) and a rename
whose old name has work still waiting (a chmod just before it) cannot be kept as moves:
journal enqueue_move sends a delete of the old name and a put of the new one. Every
target kept the old name as 'deleted' though its bytes lived on at the new name, so
`mirrord trash` listed a rename and `undelete` brought back a duplicate. The real
`mirrord run` daemon on a local directory, S3 in 'copy' mode and a mirror host (rsync over
sshd), and on a versioned bucket beside a local directory: nothing is listed after such
renames, nor after an exchange of two files (renameat2 RENAME_EXCHANGE: two puts over each
other, both names kept as 'overwritten' before; mirrord.trash.swaps), while a delete, a rename followed by a rewrite with other bytes, and an exchange
followed by an overwrite still keep the bytes they destroyed, on every target."""

from __future__ import annotations

import os
from functools import partial

import pytest

from tests.e2e import keep_nothing as steps
from tests.e2e.test_exchange_in_flight import exchange
from tests.e2e.test_keep_shapes import kept_versions, sha
from tests.e2e.test_trash_e2e import keeping_config
from tests.reliability.conftest import Env


@pytest.fixture(params=["three", "three-inotify", "versioned"])
def env(request, tmp_path, seaweedfs):
    """Three targets (fanotify where the process may use it, else inotify; or inotify,
    which reports an exchange as two moves), or a versioned bucket beside a local dir."""
    if request.param.startswith("three"):
        cfg = keeping_config(tmp_path, seaweedfs, request.getfixturevalue("sshd"))
        if request.param == "three-inotify":
            text = cfg.read_text()
            assert "[source:uploads]\n" in text
            cfg.write_text(text.replace("[source:uploads]\n", "[source:uploads]\nwatcher = inotify\n"))
        names = None
    else:
        cfg = steps.versioned_and_local(tmp_path, seaweedfs)
        names = ("s3", "local")
    e = Env(tmp_path, cfg) if names is None else Env(tmp_path, cfg, names=names)
    try:
        yield e
    finally:
        e.close()


TIMEOUT = 180   # seconds, each bounded poll (three targets, one over ssh)
settle = partial(steps.settle, timeout=TIMEOUT)
start = partial(steps.start, timeout=TIMEOUT)
listed, write = steps.listed, steps.write


N = 6


def test_back_to_back_renames_and_a_rename_with_work_waiting_keep_nothing(env):
    files = {f"chain/a{i}.jpg": f"chain photo {i}\n".encode() * (i + 1) for i in range(N)}
    files |= {f"mode/x{i}.jpg": f"mode photo {i}\n".encode() * (i + 1) for i in range(N)}
    start(env, files)
    for i in range(N):
        os.rename(env.src / f"chain/a{i}.jpg", env.src / f"chain/b{i}.jpg")
        os.rename(env.src / f"chain/b{i}.jpg", env.src / f"chain/c{i}.jpg")
    for i in range(N):
        os.chmod(env.src / f"mode/x{i}.jpg", 0o600)      # an attr row waits at the old name
        os.rename(env.src / f"mode/x{i}.jpg", env.src / f"mode/y{i}.jpg")
    settle(env)
    assert listed(env) == {name: [] for name in env.targets}
    assert env.daemon.cli("undelete", "chain/a0.jpg", check=False).returncode == 1


def test_exchanges_keep_nothing(env):
    files = {f"x/one{i}.jpg": f"first {i}\n".encode() * (i + 1) for i in range(N)}
    files |= {f"x/two{i}.jpg": f"second {i}\n".encode() * (i + 3) for i in range(N)}
    start(env, files)
    for i in range(N):
        exchange(env.src / f"x/one{i}.jpg", env.src / f"x/two{i}.jpg")
    settle(env)
    assert listed(env) == {name: [] for name in env.targets}
    exchange(env.src / "x/one0.jpg", env.src / "x/two0.jpg")   # and back
    settle(env)
    assert listed(env) == {name: [] for name in env.targets}


def test_a_delete_a_rename_then_rewrite_and_an_exchange_then_overwrite_stay_kept(env):
    files = {"gone.jpg": b"deleted for real", "r.jpg": b"renamed then rewritten",
             "one.jpg": b"first of the pair", "two.jpg": b"second of the pair, longer"}
    start(env, files)
    (env.src / "gone.jpg").unlink()
    os.chmod(env.src / "r.jpg", 0o600)                   # the rename falls back
    os.rename(env.src / "r.jpg", env.src / "s.jpg")
    write(env.src / "s.jpg", b"other bytes at the new name")
    exchange(env.src / "one.jpg", env.src / "two.jpg")
    settle(env)
    write(env.src / "one.jpg", b"overwritten after the exchange")   # old two.jpg's bytes
    settle(env)
    kept = kept_versions(env)
    for name, rows in kept.items():
        digests = {digest for _path, _why, digest, _stamp, _ns in rows}
        for rel in ("gone.jpg", "r.jpg", "two.jpg"):
            assert sha(files[rel]) in digests, (name, rel, rows)
        assert ("gone.jpg", "deleted") in {(p, w) for p, w, *_ in rows}, (name, rows)


def test_two_directories_swapped_through_a_temp_name_keep_nothing(env):
    """`mv d1 x; mv d2 d1; mv x d2`: the last two renames fall back to a tree removal and a
    re-send (work pending at a name); every target listed all of both directories as
    'directory removed' (mirrord.trash.moved_trees). A file rewritten at the source after
    the rotation still keeps its old bytes, once (a versioned bucket may call them
    'deleted': its marker and the re-send share a server second, versioning._judge)."""
    files = {f"d{d}/f{i}.jpg": f"dir {d} photo {i}\n".encode() * (i + d) for d in (1, 2)
             for i in range(N)}
    start(env, files)
    os.rename(env.src / "d1", env.src / "x")
    os.rename(env.src / "d2", env.src / "d1")
    os.rename(env.src / "x", env.src / "d2")
    settle(env)
    assert listed(env) == {name: [] for name in env.targets}
    write(env.src / "d2/f0.jpg", b"rewritten after the rotation")
    settle(env)
    kept = kept_versions(env)
    old = sha(files["d1/f0.jpg"])
    assert {name: [(p, d) for p, _w, d, *_ in rows] for name, rows in kept.items()} == {
        name: [("d2/f0.jpg", old)] for name in env.targets}
