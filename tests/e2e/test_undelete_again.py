"""The same `mirrord undelete` run again, on the real daemon and the three targets (local,
S3 on SeaweedFS, rsync over sshd) and on a versioned bucket beside a local directory: a
retry changes nothing, whatever its window; --force (newer work in the source) does not
undo earlier restores; the source restored after the targets gets what they were
restored to; a restore into the source while the daemon is stopped reaches every target
at its start. Shapes from a trial that broke the first version of the rule (helper-162);
each failed before (mirrord/trash/restore.py, `again`)."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime, timezone

import pytest

from tests.e2e import keep_nothing as steps
from tests.e2e.test_keep_shapes import (NAMES, env, kept_versions,  # noqa: F401 (fixture)
                                        rewrite_keeping_size_and_mtime, settle, sha, start,
                                        write)
from tests.reliability.conftest import Env

CLEAN = {f"enc/f{i}.doc": b"clean data %02d\n" % i for i in range(3)}


def enc(data: bytes) -> bytes:
    return data.replace(b"clean data", b"ENCRYPTED!")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def encrypt_live(env: Env) -> None:
    for rel, data in CLEAN.items():
        write(env.src / rel, data)
    start(env)
    for rel, data in CLEAN.items():
        rewrite_keeping_size_and_mtime(env.src / rel, enc(data))
    settle(env)


def source_bytes(env: Env) -> dict[str, bytes]:
    return {rel: (env.src / rel).read_bytes() for rel in CLEAN}


def test_a_retry_with_since_leaves_the_restore(env):
    """The same undelete run again, with a --since (e.g. a relative `--since 2h` rerun
    later, when the window no longer reaches the encryption but still holds the restore):
    a retry must change nothing."""
    encrypt_live(env)
    time.sleep(1.5)
    between = iso(time.time())     # after the encryption was seen, before the restore
    time.sleep(1.5)
    env.daemon.cli("undelete", "--to-source", "--target", "local", str(env.src / "enc"))
    first = source_bytes(env)
    settle(env)        # the daemon shipped the restored bytes, keeping the encrypted ones
    res = env.daemon.cli("undelete", "--to-source", "--target", "local", "--since", between,
                         str(env.src / "enc"), check=False)
    settle(env)
    assert source_bytes(env) == first, ("a retry changed the source without --force",
                                        res.returncode, res.stdout)


def test_force_advised_by_a_refusal_does_not_undo_the_earlier_restores(env):
    """One file's mtime is put back late (refused: newer); rerun with --force as the
    refusal says, it wrote the encrypted bytes back over every file the first run
    restored. Now --force overwrites newer work only."""
    for rel, data in CLEAN.items():
        write(env.src / rel, data)
    start(env)
    for i, (rel, data) in enumerate(CLEAN.items()):
        path = env.src / rel
        st = path.stat()
        with open(path, "r+b") as fh:
            fh.write(enc(data))
        if i == len(CLEAN) - 1:
            time.sleep(1.0)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    settle(env)
    res = env.daemon.cli("undelete", "--to-source", "--target", "local", str(env.src / "enc"),
                         check=False)
    assert res.returncode == 1 and res.stdout.count("refused:") == 1, res.stdout
    settle(env)
    res = env.daemon.cli("undelete", "--to-source", "--force", "--target", "local",
                         str(env.src / "enc"), check=False)
    # the one refused as newer is written; the others already hold what the first run
    # put back: refused again (exit 1), naming --newest
    assert res.returncode == 1 and res.stdout.count("written:") == 1, res.stdout
    assert res.stdout.count("already holds the earlier version of") == len(CLEAN) - 1
    settle(env)
    assert source_bytes(env) == CLEAN, res.stdout


def test_targets_first_then_the_source(env):
    """After a failover the operator repairs the targets first (undelete without
    --to-source), then the source (undelete --to-source): the source stayed encrypted,
    "unchanged"; it gets what the targets were restored to."""
    encrypt_live(env)
    res = env.daemon.cli("undelete", str(env.src / "enc"))
    assert res.stdout.count("restored:") == 3 * len(CLEAN), res.stdout
    res = env.daemon.cli("undelete", "--to-source", str(env.src / "enc"), check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert source_bytes(env) == CLEAN, ("source left encrypted", res.returncode, res.stdout)
    settle(env)


def test_targets_first_then_a_reconcile_then_the_source(env):
    """helper-163: the targets restored, then a reconcile sent the still encrypted source
    to them again (the clean bytes kept again, now the newest version); `--to-source` then
    found the source holding an earlier version again (the encrypted one the targets'
    restore kept) and said 'unchanged', exit 0: the source stayed encrypted. The bytes
    cannot tell this from a retry: refused, exit 1, naming --newest, which writes the
    clean bytes; every target ends exact."""
    encrypt_live(env)
    res = env.daemon.cli("undelete", str(env.src / "enc"))
    assert res.stdout.count("restored:") == 3 * len(CLEAN), res.stdout
    # --checksum: the encrypted bytes kept each file's size and mtime (a longer file is
    # sent again by the hourly reconcile too: helper-163)
    res = env.daemon.cli("reconcile", "--checksum", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    settle(env)
    res = env.daemon.cli("undelete", "--to-source", str(env.src / "enc"), check=False)
    assert res.returncode == 1 and res.stdout.count("--newest") == len(CLEAN), res.stdout
    assert source_bytes(env) == {rel: enc(d) for rel, d in CLEAN.items()}
    res = env.daemon.cli("undelete", "--to-source", "--newest", str(env.src / "enc"),
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert source_bytes(env) == CLEAN
    settle(env)


def test_restore_to_source_while_stopped_then_started(env):
    encrypt_live(env)
    env.daemon.stop()
    for _ in range(3):
        res = env.daemon.cli("undelete", "--to-source", str(env.src / "enc"), check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    assert source_bytes(env) == CLEAN
    start(env)     # settles: every target exact with the source
    for name, rows in kept_versions(env, "enc").items():
        shas = sorted(r[2] for r in rows)
        want = sorted([sha(d) for d in CLEAN.values()] + [sha(enc(d)) for d in CLEAN.values()])
        assert shas == want, (name, rows)
    for where in (["--to-source"], *(["--target", n] for n in NAMES)):
        for _ in range(2):   # refused: each path holds the version put back again
            res = env.daemon.cli("undelete", *where, str(env.src / "enc"), check=False)
            assert res.returncode == 1, res.stdout + res.stderr
            assert res.stdout.count("refused:") == len(CLEAN), res.stdout
    settle(env)
    assert source_bytes(env) == CLEAN


@pytest.fixture
def venv(tmp_path, seaweedfs):
    e = Env(tmp_path, steps.versioned_and_local(tmp_path, seaweedfs), names=("s3", "local"))
    try:
        yield e
    finally:
        e.close()


def test_versioned_bucket_retries(venv):
    env = venv
    for rel, data in CLEAN.items():
        write(env.src / rel, data)
    os.utime(env.src / "enc", None)
    start(env)
    time.sleep(1.1)
    for rel, data in CLEAN.items():
        rewrite_keeping_size_and_mtime(env.src / rel, enc(data))
    settle(env)
    outs = []
    for i in range(3):
        time.sleep(1.1)
        res = env.daemon.cli("undelete", "--to-source", str(env.src / "enc"), check=False)
        outs.append(res.stdout + res.stderr)
        assert res.returncode == (0 if i == 0 else 1), outs    # then refused: a retry
        settle(env)
        assert source_bytes(env) == CLEAN, outs
    for name in ("s3", "local"):
        for i in range(3):
            res = env.daemon.cli("undelete", "--target", name, str(env.src / "enc"), check=False)
            outs.append(res.stdout + res.stderr)
            assert res.returncode == 1 and "restored:" not in res.stdout, outs
    settle(env)
    assert source_bytes(env) == CLEAN, outs
    # --newest onto the bucket only: exactly the newest version (the encrypted bytes) goes back
    res = env.daemon.cli("undelete", "--newest", "--target", "s3", str(env.src / "enc"),
                         check=False)
    assert res.stdout.count("restored:") == len(CLEAN), res.stdout
    for rel, data in CLEAN.items():
        assert env.targets["s3"].checksum(rel) == hashlib.sha256(enc(data)).hexdigest(), rel
