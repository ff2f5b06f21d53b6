"""keep_deleted and the journal's moves tried as an operator would (a tester's shapes): the
real `mirrord run` process on a real source, a local directory, S3 (SeaweedFS, conditional
writes) and a mirror host (rsync over sshd), all with keep_deleted = 7d. Shapes: rapid
overwrite loops of one file, rename chains right after writing, a big file overwritten,
a file replaced by a directory and back, kill -9 mid-burst, a reconcile during a burst.
Each test ends with every target exact (bytes, mtime) and checks that the trash holds
each replaced version at most once and never the current one."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_trash_e2e import keeping_config, reconcile_counts
from tests.exactness import wait_exact
from tests.reliability.conftest import Env, excluded, poll

NAMES = ("local", "s3", "host")


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    cfg = keeping_config(tmp_path, seaweedfs, sshd)
    cfg.write_text(cfg.read_text().replace("keep_deleted = 1d", "keep_deleted = 7d"))
    e = Env(tmp_path, cfg)
    try:
        yield e
    finally:
        e.close()


def start(env: Env) -> None:
    env.daemon.start()
    poll(lambda: all(t.get("last_reconcile") for t in env.daemon.status()["targets"].values()),
         timeout=120, what="the start-up reconcile pass")
    settle(env)


def settle(env: Env) -> None:
    poll(env.drained, timeout=180, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=180, excluded=excluded)


def kept_versions(env: Env, prefix: str = "") -> dict[str, list[tuple[str, str, str]]]:
    """Per target: [(path, why, sha1 of kept bytes)] for every kept file under prefix."""
    out = {}
    for name, target in env.targets.items():
        rows = []
        for k in target.trash_list(prefix):
            with tempfile.NamedTemporaryFile(dir=env.tmp) as fh:
                target.trash_fetch(k, fh.name)
                digest = hashlib.sha1(Path(fh.name).read_bytes()).hexdigest()
            rows.append((k.path, k.why, digest, k.stamp, k.mtime_ns))
        out[name] = sorted(rows)
    return out


def sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def check_no_double_keep(kept: dict, written: dict[str, set[str]], current: dict[str, str]):
    """No version (path, bytes, mtime) is kept twice. (Kept bytes that were never a closed
    version of the source are tests/e2e/test_rewrite_in_place.py's subject, not checked here.)"""
    problems = {}
    for name, rows in kept.items():
        seen = {}
        for path, why, digest, stamp, mtime_ns in rows:
            seen.setdefault((path, digest, mtime_ns), []).append((why, stamp))
        for (path, digest, _), whens in seen.items():
            if len(whens) > 1:
                problems.setdefault(name, []).append(("kept twice", path, digest[:8], whens))
    return problems


def test_rapid_overwrite_loop_keeps_each_version_once(env):
    f = env.src / "hot" / "page.txt"
    write(f, b"v-original\n")
    start(env)
    written = {"hot/page.txt": {sha(b"v-original\n")}}
    for i in range(60):
        data = f"v{i:03d}\n".encode() * (i + 1)
        write(f, data)
        written["hot/page.txt"].add(sha(data))
    settle(env)
    kept = kept_versions(env, "hot")
    final = sha(f.read_bytes())
    problems = check_no_double_keep(kept, written, {"hot/page.txt": final})
    for name, rows in kept.items():
        digests = [r[2] for r in rows]
        if sha(b"v-original\n") not in digests:
            problems.setdefault(name, []).append(("original not kept", digests[:3]))
    assert not problems, (problems, kept)
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in NAMES}


def test_rename_right_after_write_and_chains(env):
    (env.src / "d").mkdir()
    write(env.src / "d" / "seed.txt", b"seed")
    start(env)
    for i in range(40):
        tmp = env.src / "d" / f".up{i}.part"
        data = f"upload {i}\n".encode() * 50
        write(tmp, data)
        os.rename(tmp, env.src / "d" / f"file{i}.bin")
    for i in range(15):
        data = f"chain {i}\n".encode() * 30
        write(env.src / "d" / "a", data)
        os.rename(env.src / "d" / "a", env.src / "d" / "b")
        os.rename(env.src / "d" / "b", env.src / "d" / "c")
        os.rename(env.src / "d" / "c", env.src / f"d/chain{i}")
    settle(env)
    kept = kept_versions(env, "d")
    # nothing was overwritten or deleted that had reached a target as a user file except a,b,c
    bad = {n: [r for r in rows if r[0] not in {"d/a", "d/b", "d/c"}] for n, rows in kept.items()}
    assert not any(bad.values()), bad
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in NAMES}


def test_overwrite_then_rename_over(env):
    write(env.src / "x.txt", b"x original")
    write(env.src / "y.txt", b"y original")
    start(env)
    written = {"y.txt": {sha(b"y original"), sha(b"x original")},
               "x.txt": {sha(b"x original")}}
    for i in range(20):
        data = f"x round {i}".encode()
        write(env.src / "x.txt", data)
        written["x.txt"].add(sha(data))
        written["y.txt"].add(sha(data))
        os.replace(env.src / "x.txt", env.src / "y.txt")
        write(env.src / "x.txt", b"x original")
    settle(env)
    kept = kept_versions(env)
    problems = check_no_double_keep(kept, written, {})
    for name, rows in kept.items():
        if sha(b"y original") not in [r[2] for r in rows if r[0] == "y.txt"]:
            problems.setdefault(name, []).append(("y original not kept", rows))
    assert not problems, (problems, kept)
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in NAMES}


def test_big_file_overwritten(env):
    big = env.src / "big.bin"
    v1 = os.urandom(20 * 1024 * 1024)
    write(big, v1)
    start(env)
    v2 = os.urandom(20 * 1024 * 1024)
    write(big, v2)
    settle(env)
    v3 = v2[:1000] + b"changed" + v2[1007:]
    write(big, v3)
    settle(env)
    kept = kept_versions(env)
    want = sorted([sha(v1), sha(v2)])
    got = {n: sorted(r[2] for r in rows if r[0] == "big.bin") for n, rows in kept.items()}
    assert got == {n: want for n in NAMES}, got
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in NAMES}


def test_kill9_mid_overwrite_burst_then_restart(env):
    for j in range(10):
        write(env.src / "k" / f"f{j}.txt", f"orig {j}".encode())
    start(env)
    written = {f"k/f{j}.txt": {sha(f"orig {j}".encode())} for j in range(10)}
    for i in range(30):
        for j in range(10):
            data = f"round {i} file {j}\n".encode() * (i + 1)
            write(env.src / "k" / f"f{j}.txt", data)
            written[f"k/f{j}.txt"].add(sha(data))
        if i == 15:
            env.daemon.kill(signal.SIGKILL)
    env.daemon.start()
    settle(env)
    kept = kept_versions(env, "k")
    # README "What is kept where": on S3 a retry after a restart that saw the change again
    # may keep a second copy (the keep and the put are two requests): documented, not checked
    problems = check_no_double_keep({n: r for n, r in kept.items() if n != "s3"}, written, {})
    for name, rows in kept.items():
        for j in range(10):
            if sha(f"orig {j}".encode()) not in [r[2] for r in rows if r[0] == f"k/f{j}.txt"]:
                problems.setdefault(name, []).append(("orig not kept", j))
    assert not problems, (problems, kept)
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in NAMES}


def test_reconcile_during_burst(env):
    for j in range(30):
        write(env.src / "r" / f"f{j}.txt", f"orig {j}".encode())
    start(env)
    written = {f"r/f{j}.txt": {sha(f"orig {j}".encode())} for j in range(30)}
    stop = threading.Event()

    def burst():
        i = 0
        while not stop.is_set() and i < 400:
            j = i % 30
            data = f"burst {i} file {j}\n".encode() * 20
            write(env.src / "r" / f"f{j}.txt", data)
            written[f"r/f{j}.txt"].add(sha(data))
            i += 1

    th = threading.Thread(target=burst)
    th.start()
    res = env.daemon.cli("reconcile", "--json", check=False)
    stop.set()
    th.join()
    settle(env)
    (env.tmp / "reconcile_during.json").write_text(res.stdout + "\n" + res.stderr)
    kept = kept_versions(env, "r")
    problems = check_no_double_keep(kept, written, {})
    assert not problems, (problems, kept)
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in NAMES}


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    """Overwrite `path` in place with `data` (its length) and put its mtime back, as
    ransomware that keeps lengths, or a script restoring timestamps, does: through the
    descriptor, before the close the daemon dates the change by. Put back after the close,
    the file's ctime can fall after that date, and `undelete --to-source` rightly reads
    it as newer work (README; a rehearsal failed so, 1 run in 3)."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.flush()
        os.utime(fh.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("when", ["live", "while stopped, repaired by reconcile --checksum"])
def test_a_rewrite_keeping_size_and_mtime_keeps_the_old_bytes(env, when):
    """A review (helper-155): the put's "this very version is there already" test looked
    at size and mtime only, so the rewritten bytes replaced the only good copy on every
    target and nothing was kept. Now each target keeps the old bytes as 'overwritten';
    every target ends exact, and `undelete --to-source` brings the clean bytes back."""
    files = {env.src / "enc" / f"f{i}.doc": b"clean data %02d\n" % i for i in range(5)}
    for path, data in files.items():
        write(path, data)
    start(env)
    if when != "live":
        env.daemon.stop()
    for path, data in files.items():
        rewrite_keeping_size_and_mtime(path, data.replace(b"clean data", b"ENCRYPTED!"))
    if when == "live":
        settle(env)
    else:
        res = env.daemon.cli("reconcile", "--checksum", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        for target in env.targets.values():
            wait_exact(env.src, target, timeout=60, excluded=excluded)
    want = sorted((str(p.relative_to(env.src)), "overwritten", sha(d)) for p, d in files.items())
    for name, rows in kept_versions(env, "enc").items():
        assert sorted(r[:3] for r in rows) == want, name
    # and the clean bytes come back into the source: the files there have the kept size
    # and mtime, which made `undelete --to-source` call them "unchanged" before
    res = env.daemon.cli("undelete", "--to-source", "--target", "local", str(env.src / "enc"),
                         check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert {p: p.read_bytes() for p in files} == files
    # the same undelete run again (a retry), into the source and onto each target: the
    # restore was a change, so the daemon kept what it replaced (the encrypted bytes) as
    # the newest version, and a second run put them back (a trial, helper-160). The paths
    # hold an earlier kept version again: each is left as it is (refused, exit 1)
    if when != "live":
        start(env)
    settle(env)
    for where in (["--to-source", "--target", "local"], *(["--target", n] for n in NAMES)):
        res = env.daemon.cli("undelete", *where, str(env.src / "enc"), check=False)
        assert res.returncode == 1, res.stdout + res.stderr     # refused, naming --newest
        assert res.stdout.count("already holds the earlier version of") == 5, res.stdout
    settle(env)
    assert {p: p.read_bytes() for p in files} == files


def alarm_count(env: Env) -> int:
    """The mass-change alarm's count in the window, over every source, from a status
    document the daemon wrote after this call. It writes one with each heartbeat: read at
    once, the one standing could predate the change just settled (a rehearsal read a
    same-size rewrite's count one heartbeat early)."""
    mark = time.time()
    doc = poll(lambda: (lambda d: d if float((d.get("daemon") or {}).get("updated") or 0) > mark
                        else None)(env.daemon.status()),
               timeout=60, what="a status document written after the change")
    return sum((src.get("alarm_detail") or {}).get("count", 0)
               for src in doc["sources"].values())


@pytest.mark.parametrize("when", ["live", "while stopped"])
def test_touch_of_an_existing_file_keeps_nothing(env, when):
    """A trial (helper-161): coreutils `touch` opens the file for writing (O_WRONLY|O_CREAT)
    and then sets its times; seen live, its close reads as a write and the file is sent
    again, and every target kept the same bytes under the old mtime as 'overwritten', a
    duplicate in `mirrord trash` and against keep_deleted_max. The same while the daemon
    was stopped: the start's pass sends the file again for its new mtime. The bytes are
    compared whenever the sizes match: nothing is kept, every target takes the new mtime
    (settle: exact, to the nanosecond), and a file rewritten with its size kept under a
    new mtime is still kept, once. A 9 MiB file takes S3's large put (keep_before). The
    mass-change alarm counted each touched file as an overwrite too: a small one now
    counts nothing (known limit: a file over 8 KiB still counts 1)."""
    files = {f"t/f{i}.txt": b"body %d\n" % i * 40 for i in range(6)}
    files["t/big.bin"] = os.urandom(9 << 20)
    for rel, data in files.items():
        write(env.src / rel, data)
    start(env)
    if when != "live":
        env.daemon.stop()
    for rel in files:
        subprocess.run(["touch", str(env.src / rel)], check=True)
    if when != "live":
        env.daemon.start()
    settle(env)
    assert kept_versions(env, "t") == {n: [] for n in NAMES}
    # the alarm (live only: a catch-up's rewrites are not counted) counted one overwrite a
    # file touched; a file of 8 KiB or less is sampled whole, so the same bytes are told
    # (mirrord.appends.WHOLE) and count nothing; the 9 MiB file still counts 1
    live = 1 if when == "live" else 0
    assert alarm_count(env) == live
    # touched again, to a given time: nothing kept (the alarm's count for it depends on
    # timing and on what this process sent: tests/unit/test_journal_first_copies.py)
    subprocess.run(["touch", "-d", "2001-02-03 04:05:06.123456789", str(env.src / "t/f0.txt")],
                   check=True)
    settle(env)
    assert kept_versions(env, "t") == {n: [] for n in NAMES}
    before = alarm_count(env)
    # other bytes of the same size under a new mtime destroy the old ones: kept once each,
    # and counted
    write(env.src / "t/f1.txt", files["t/f1.txt"].upper())
    settle(env)
    assert alarm_count(env) == before + 1
    got = {n: [(r[0], r[1], r[2]) for r in rows] for n, rows in kept_versions(env, "t").items()}
    want = [("t/f1.txt", "overwritten", sha(files["t/f1.txt"]))]
    assert got == {n: want for n in NAMES}, got
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in NAMES}
