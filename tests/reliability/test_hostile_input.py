"""Hostile and awkward input against all three real targets.

What a target cannot store (S3: a name that is not UTF-8, a key over 1024
bytes) is reported for that file alone; everything else converges byte for byte.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
import unicodedata
from pathlib import Path

import pytest

from tests.reliability.conftest import NO_DAC, Env, PrefixedMirrord, converge, poll

TOKEN = "PWNED-" + secrets.token_hex(4)
INJECTION = [f"-e touch {TOKEN}", f"--rsh=touch {TOKEN}", f"$(touch {TOKEN})", f"`touch {TOKEN}`",
             f"; touch {TOKEN}", f"| touch {TOKEN}", f"&& touch {TOKEN} &&", "-e", "--delete",
             "-", "--", f"--rsync-path=touch {TOKEN}"]
AWKWARD = ["new\nline", "tab\there", "*", "?", "[ab]", "{a,b}", "~tilde", "%41%2F%", "a+b c",
           " leading space", "trailing space ", "'single'", '"double"', "back\\slash", "#hash",
           "!bang", "semi;colon", "amp&er", "dollar$HOME", "ütf-8 ☃ 日本", "\x01ctrl"]
NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
S3_PREFIX = "up/"


def _s3_listable(path: str) -> bool:
    """What S3 stores and lists back under the same key. SeaweedFS (not AWS) turns a
    backslash in a key into '/' in listings, though GET of the exact key works: those
    are compared by reading the exact key instead (see the test)."""
    if "\\" in path or path.startswith(("names/back/", "names/d back/")):
        return False
    return _s3_storable(path)


def _s3_storable(path: str) -> bool:
    try:
        key = (S3_PREFIX + path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(key) <= 1024


def _mirrorable(path: str) -> bool:
    return path.split("/")[0] != ".mirrord"


def _converge(env: Env, timeout: float = 180.0) -> None:
    for name, target in env.targets.items():
        ok = _s3_listable if name == "s3" else (lambda p: True)
        converge(env.src, target, timeout=timeout,
                 skip=lambda p, ok=ok: not _mirrorable(p) or not ok(p))


def _fsname(tail: str | bytes) -> str:
    return os.fsdecode(tail)


@pytest.fixture
def outside(tmp_path) -> Path:
    out = tmp_path / "outside"
    (out / "dir").mkdir(parents=True)
    (out / "secret.txt").write_text("outside the tree: never shipped")
    (out / "dir" / "inner.txt").write_text("outside too")
    return out


def test_hostile_names_and_shapes(env, outside, sshd):
    src = env.src
    (src / "dir2sym").mkdir()
    (src / "dir2sym" / "a.txt").write_text("was a directory")
    (src / "swap2").mkdir()
    (src / "swap2" / "inner").write_text("dir that becomes a file")
    env.daemon.start()
    env.converge()

    names = src / "names"
    names.mkdir()
    for n in INJECTION + AWKWARD:
        (names / n).write_bytes(n.encode("utf-8", "surrogateescape"))
        (names / f"d {n}").mkdir()
        (names / f"d {n}" / n).write_text("nested: " + n)
    (src / "-e").write_text("leading dash at the root")
    (src / f"--rsh=touch {TOKEN}").write_text("option-looking name at the root")
    bad = os.fsencode(src) + b"/bad-\xff\xfe.bin"
    with open(bad, "wb") as fh:
        fh.write(b"not utf-8 name")
    os.makedirs(os.fsencode(src) + b"/baddir-\xe9", exist_ok=True)
    with open(os.fsencode(src) + b"/baddir-\xe9/inner.txt", "wb") as fh:
        fh.write(b"inside a latin-1 directory")
    (src / ("L" * 251 + ".bin")).write_text("255-byte name")
    (src / ("é" * 127 + "x")).write_text("255-byte name, multibyte")
    deep = src.joinpath(*[f"level{i:02d}-" + "d" * 12 for i in range(30)])
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_text("deep")
    too_long = src.joinpath(*["k" * 200 for _ in range(6)])   # > 1024 bytes: not for S3
    too_long.mkdir(parents=True)
    (too_long / "long.txt").write_text("key too long for S3")
    (src / NFC).write_text("NFC")
    (src / NFD).write_text("NFD")
    (src / "hard-a").write_text("hard linked")
    os.link(src / "hard-a", src / "hard-b")
    os.symlink(outside / "secret.txt", src / "link-to-outside-file")
    os.symlink(outside, src / "link-to-outside-dir")
    os.symlink("hard-a", src / "link-to-inside-file")
    os.mkfifo(src / "a-fifo")
    (src / ".mirrord").mkdir()                       # collides with mirrord's own area
    (src / ".mirrord" / "heartbeat.json").write_text("not ours")
    # a file and a directory swapping at one path, both ways
    (src / "swap").write_text("file first")
    (src / "swap").unlink()
    (src / "swap").mkdir()
    (src / "swap" / "inside").write_text("now a directory")
    subprocess.run(["rm", "-r", "--", str(src / "swap2")], check=True)
    (src / "swap2").write_text("now a file")
    # a directory replaced by a symlink to outside
    subprocess.run(["rm", "-r", "--", str(src / "dir2sym")], check=True)
    os.symlink(outside / "dir", src / "dir2sym")
    # a symlinked parent directory: writes through it land outside, never shipped
    (src / "dir2sym" / "through-link.txt").write_text("written through a symlinked parent")

    _converge(env)
    for name, target in env.targets.items():
        listed = {e.path for e in target.list()}
        for p in ("link-to-outside-file", "link-to-outside-dir", "link-to-inside-file", "a-fifo",
                  "dir2sym", "dir2sym/a.txt", "dir2sym/through-link.txt", "dir2sym/inner.txt",
                  "link-to-outside-dir/secret.txt"):
            assert p not in listed, (name, p)
        assert target.read(NFC) == b"NFC" and target.read(NFD) == b"NFD"
        assert target.read("hard-b") == b"hard linked"
        assert b"never shipped" not in b"".join(target.read(p) or b"" for p in listed
                                                if not p.endswith("/") and target.stat(p)
                                                and not target.stat(p).is_dir)
        hb = target.read_meta("heartbeat.json")
        assert hb is None or b"not ours" not in hb
    for name in ("local", "host"):
        assert env.targets[name].read(_fsname(b"bad-\xff\xfe.bin")) == b"not utf-8 name"
    for p in ("names/back\\slash", "names/d back\\slash/back\\slash"):
        assert env.targets["s3"].read(p) == (src / p).read_bytes()

    # What S3 cannot store is reported for that file alone; the rest is there (checked above).
    s3 = poll(lambda: (t := env.daemon.status()["targets"]["s3"]) and t["pending"] >= 3 and t,
              what="S3's unstorable files held in its backlog")
    log = env.log_text()
    assert "not valid UTF-8" in log or "UTF-8" in log, log[-2000:]
    assert "1024" in log or "too long" in log.lower()
    for name in ("local", "host"):   # only the two paths inside the source's own .mirrord/
        assert poll(lambda: env.daemon.status()["targets"][name]["pending"] == 2,
                    what=f"{name} drained")
    assert s3["last_error"]

    # no name became an option or a shell word anywhere
    places = [Path.cwd(), src, env.tmp, Path(sshd.base), Path(sshd.base) / "home", Path.home(),
              Path("/tmp"), Path("/")]
    places += [Path(env.cfg.read_text().split("path = ")[-1].split("\n")[0].strip())]
    for place in places:
        assert not (place / TOKEN).exists(), place
    assert env.daemon.stop() == 0


def test_slowly_written_file_is_shipped_complete_never_half(env):
    """Written over ~8 s while a reconcile pass (a scan, like the catch-up at start or an
    overflow rescan) finds it half-written: no target ever holds a partial copy."""
    env.daemon.start()
    chunks = [os.urandom(1000) for _ in range(16)]
    final = b"".join(chunks)
    seen_partial: list[tuple[str, int]] = []
    done = threading.Event()
    reconciled: list[int] = []

    def watch():
        while not done.is_set():
            for name, target in env.targets.items():
                data = target.read("slow.bin")
                if data is not None and data != final:
                    seen_partial.append((name, len(data)))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    scan = threading.Thread(target=lambda: reconciled.append(
        env.daemon.cli("reconcile", check=False)))
    try:
        with open(env.src / "slow.bin", "wb") as fh:
            for i, chunk in enumerate(chunks):     # ~8 s, flushed as it goes
                fh.write(chunk)
                fh.flush()
                if i == 2:
                    scan.start()
                time.sleep(0.5)
        scan.join()
        env.converge()
    finally:
        done.set()
        watcher.join()
    assert seen_partial == []
    assert len(reconciled) == 1, "the reconcile pass did not finish"
    res = reconciled[0]   # 1 when it saw the file still open: "left in the journal for retry"
    assert res.returncode == 0 or "still open for writing" in res.stdout + res.stderr, res.stdout
    assert env.daemon.stop() == 0


def test_unreadable_files_and_directories(env):
    """The daemon runs without root's DAC override, so mode 000 really is unreadable.
    Logged and counted, retried, the rest goes on; never a delete on the targets."""
    env.daemon = PrefixedMirrord(env.cfg, env.log, NO_DAC)
    src = env.src
    (src / "ok.txt").write_text("readable")
    (src / "locked.txt").write_text("unreadable for now")
    (src / "locked-dir").mkdir()
    (src / "locked-dir" / "inner.txt").write_text("below an unreadable directory")
    env.daemon.start()
    env.converge()                                     # everything there while readable
    (src / "locked.txt").write_text("changed, then locked")
    (src / "locked.txt").chmod(0)
    (src / "new-locked.txt").write_text("never readable yet")
    (src / "new-locked.txt").chmod(0)
    (src / "locked-dir").chmod(0)
    (src / "after.txt").write_text("the rest goes on")
    unreadable = {"locked.txt", "new-locked.txt"}
    for target in env.targets.values():
        converge(src, target, skip=lambda p: p in unreadable or p.startswith("locked-dir"))
    for name, target in env.targets.items():
        assert target.read("locked-dir/inner.txt") == b"below an unreadable directory", name
        # kept: the old copy, or the new one if a worker read it before the chmod
        assert target.read("locked.txt") in (b"unreadable for now", b"changed, then locked"), name
    status = poll(lambda: (s := env.daemon.status()) and all(
        t["last_error"] and "unreadable" in t["last_error"] for t in s["targets"].values()) and s,
        what="unreadable files reported per target")
    assert all(t["pending"] >= 2 for t in status["targets"].values())
    env.daemon.cli("reconcile", check=False)          # a pass while still unreadable: no deletes
    for name, target in env.targets.items():
        assert target.read("locked-dir/inner.txt") is not None, name
    (src / "locked.txt").chmod(0o644)
    (src / "new-locked.txt").chmod(0o644)
    (src / "locked-dir").chmod(0o755)
    env.daemon.cli("reconcile")   # live since (test_unreadable_made_readable.py); a pass agrees
    env.converge()
    assert env.daemon.stop() == 0
