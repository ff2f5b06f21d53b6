"""The rsync target's trash (mirrord.targets.rsync.trash) against a real sshd.

What the conformance suite cannot see from outside: a keep batch is one remote
round trip, kept files are the same inodes (rename / hard link, never a copy;
the sshd fixture's "remote" is this machine, so the root is os.stat-able),
odd names survive, one failed request fails alone, and no key path or key
material ever reaches an error message.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from mirrord import targets
from mirrord.config import RsyncOptions, TargetConfig
from mirrord.errors import NotFound, PermanentError
from mirrord.targets.model import SyncItem
from mirrord.trash.model import TRASH, trash_rel, stamp_of
from tests.targets.conftest import make_rsync

STAMP = stamp_of(1_700_000_000.25)
MTIME_NS = 1_600_000_000_123_456_789
ODD_NAMES = ["-e", "--rsh=evil", "with space/x y.txt", "star*?[x].txt", "$(echo pwned);`id`.txt",
             "quote'\"s.txt", "tab\there", "new\nline", "ünï/Ωmega", os.fsdecode(b"latin\xe9.bin")]


@pytest.fixture
def t(sshd):
    target = make_rsync(sshd)
    target.open()
    yield target
    target.close()


def root(t) -> Path:
    return Path(t.opts.path)


def write(t, path: str, data: bytes, mode: int = 0o640) -> Path:
    """A file on the 'remote' root, written directly (the host is this machine)."""
    p = root(t) / os.fsencode(path).decode("utf-8", "surrogateescape")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    os.utime(p, ns=(MTIME_NS, MTIME_NS))
    return p


def kept_path(t, why: str, path: str, stamp: str = STAMP) -> Path:
    return root(t) / trash_rel(stamp, why, path)


def count_runs(t, monkeypatch) -> list[bytes]:
    """Every remote command the target runs from now on (one ssh session each)."""
    scripts: list[bytes] = []
    real = t.conn.run

    def run(script, data=b"", timeout=300.0, **kw):
        scripts.append(script)
        return real(script, data, timeout, **kw)

    monkeypatch.setattr(t.conn, "run", run)
    return scripts


def test_a_mixed_batch_is_one_round_trip(t, monkeypatch):
    write(t, "over.txt", b"old bytes")
    write(t, "gone.txt", b"deleted bytes")
    write(t, "tree/a/1.bin", b"1" * 10)
    write(t, "tree/2.bin", b"2" * 20)
    write(t, "stays/x", b"x")
    scripts = count_runs(t, monkeypatch)
    errors = t.keep_many([("over.txt", STAMP, "file"), ("gone.txt", STAMP, "absent"),
                          ("tree", STAMP, "absent"), ("stays", STAMP, "dir"),
                          ("never/there", STAMP, "absent")])
    assert errors == [None] * 5
    assert len(scripts) == 1
    assert kept_path(t, "overwritten", "over.txt").read_bytes() == b"old bytes"
    assert (root(t) / "over.txt").read_bytes() == b"old bytes"   # stays for the put
    assert kept_path(t, "deleted", "gone.txt").read_bytes() == b"deleted bytes"
    assert not (root(t) / "gone.txt").exists()
    assert kept_path(t, "dir-removed", "tree/a/1.bin").read_bytes() == b"1" * 10
    assert not (root(t) / "tree").exists()
    assert (root(t) / "stays/x").exists()
    assert not os.path.exists(root(t) / TRASH / f"{STAMP}.dir-removed" / "stays")


def test_keeping_links_or_renames_never_copies(t):
    over, gone = write(t, "o.bin", b"o" * 1000), write(t, "d.bin", b"d" * 100)
    write(t, "dir/f.bin", b"f" * 7)
    inodes = {p: os.stat(root(t) / p).st_ino for p in ("o.bin", "d.bin", "dir")}
    assert t.keep("o.bin", stamp=STAMP, coming="file") == 1000
    assert t.keep("d.bin", stamp=STAMP, coming="dir") == 100
    assert t.keep("dir", stamp=STAMP, coming="file") == 7
    assert os.stat(kept_path(t, "overwritten", "o.bin")).st_ino == inodes["o.bin"]
    assert os.stat(over).st_nlink == 2
    assert os.stat(kept_path(t, "deleted", "d.bin")).st_ino == inodes["d.bin"]
    assert not gone.exists()
    assert os.stat(kept_path(t, "dir-removed", "dir")).st_ino == inodes["dir"]


def test_bytes_kept_are_exact_past_4_gib(t):
    # sparse files: no disk used; mawk's plain `print` would say 5.00001e+09 here
    for name, size in (("big/a", 5_000_000_000), ("big/b", 123), ("huge", 3 << 32 | 7)):
        write(t, name, b"")
        os.truncate(root(t) / name, size)
    assert t.keep("big", stamp=STAMP, coming="absent") == 5_000_000_123
    assert t.keep("huge", stamp=STAMP, coming="file") == 3 << 32 | 7


def test_a_put_after_keep_leaves_the_kept_bytes(t, tmp_path):
    write(t, "p.txt", b"before")
    assert t.keep("p.txt", stamp=STAMP, coming="file") == 6
    src = tmp_path / "new.txt"
    src.write_bytes(b"after, longer")
    t.put("p.txt", str(src), size=13, mtime=src.stat().st_mtime)
    assert t.read("p.txt") == b"after, longer"
    kept = kept_path(t, "overwritten", "p.txt")
    assert kept.read_bytes() == b"before" and os.stat(kept).st_mtime_ns == MTIME_NS


def test_a_retry_with_the_same_stamp_keeps_nothing_twice(t, tmp_path):
    write(t, "r.txt", b"first")
    assert t.keep("r.txt", stamp=STAMP, coming="file") == 5
    new = tmp_path / "new"
    new.write_bytes(b"second, new bytes")   # the put happened, then kill -9 before the ack
    t.put("r.txt", str(new), size=17, mtime=new.stat().st_mtime)
    assert t.keep("r.txt", stamp=STAMP, coming="file") == 0
    assert kept_path(t, "overwritten", "r.txt").read_bytes() == b"first"
    assert [k.path for k in t.trash_list()] == ["r.txt"]
    t.delete("r.txt")
    write(t, "gone", b"g")
    assert t.keep("gone", stamp=STAMP, coming="absent") == 1
    assert t.keep("gone", stamp=STAMP, coming="absent") == 0   # already renamed away
    t.delete("gone")                                            # the delete is now a no-op
    assert kept_path(t, "deleted", "gone").read_bytes() == b"g"


def test_a_file_the_trash_already_holds_is_not_kept_again_under_another_stamp(t):
    """A file kept as 'overwritten' (a second link in the trash) whose put then did not
    replace it (the source turned into a directory meanwhile), deleted under a later stamp:
    it goes, and the one version stays kept once (tests/e2e/test_dir_flip_keeps_once.py
    saw it kept twice, 10 ms apart, about 1 run in 3)."""
    write(t, "thing", b"a file again")
    assert t.keep("thing", stamp=STAMP, coming="file") == 12
    later = stamp_of(1_700_000_000.5)
    assert t.keep("thing", stamp=later, coming="dir") == 0
    assert not (root(t) / "thing").exists()
    assert [(k.path, k.why) for k in t.trash_list()] == [("thing", "overwritten")]
    write(t, "other", b"linked elsewhere")                  # a second link the trash does
    os.link(root(t) / "other", root(t) / "other.link")      # not hold: kept as usual
    assert t.keep("other", stamp=later, coming="absent") == 16
    assert kept_path(t, "deleted", "other", later).read_bytes() == b"linked elsewhere"


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_keep_list_restore_fetch_purge(t, tmp_path, name):
    write(t, name, b"odd " + os.fsencode(name), mode=0o604)
    assert t.keep(name, stamp=STAMP, coming="absent") == len(b"odd " + os.fsencode(name))
    assert t.stat(name) is None
    [k] = t.trash_list(name)
    assert (k.path, k.stamp, k.why, k.mtime_ns, k.mode) == (name, STAMP, "deleted", MTIME_NS, 0o604)
    local = tmp_path / "fetched"
    t.trash_fetch(k, str(local))
    assert local.read_bytes() == b"odd " + os.fsencode(name)
    entry = t.trash_restore(k, name)
    assert (entry.mtime_ns, entry.mode, entry.size) == (MTIME_NS, 0o604, k.size)
    assert t.read(name) == b"odd " + os.fsencode(name)
    t.trash_purge([k])
    assert list(t.trash_list()) == []
    assert os.listdir(root(t) / TRASH) == []   # emptied directories went too


def test_a_failed_request_fails_alone(t):
    write(t, "good1", b"1")
    write(t, "blocked/f", b"b")
    write(t, "good2", b"22")
    # a file where the trash needs a directory: mkdir -p fails on the host for that one
    block = root(t) / TRASH / f"{STAMP}.deleted" / "blocked"
    block.parent.mkdir(parents=True)
    block.write_bytes(b"in the way")
    errors = t.keep_many([("good1", STAMP, "absent"), ("blocked/f", STAMP, "absent"),
                          ("../escape", STAMP, "absent"), ("good2", STAMP, "bogus"),
                          ("good2", STAMP, "absent")])
    assert errors[0] is None and errors[4] is None
    assert "blocked/f" in str(errors[1]) and (root(t) / "blocked/f").exists()
    assert isinstance(errors[2], PermanentError) and isinstance(errors[3], PermanentError)
    assert kept_path(t, "deleted", "good2").read_bytes() == b"22"


def test_a_symlink_on_the_way_keeps_nothing(t, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not ours")
    os.symlink(outside, root(t) / "link")
    assert t.keep("link/secret", stamp=STAMP, coming="absent") == 0
    assert t.keep("link", stamp=STAMP, coming="absent") == 0
    write(t, "k", b"kept")
    t.keep("k", stamp=STAMP, coming="absent")
    [k] = t.trash_list()
    t.trash_restore(k, "link/secret")   # the link is replaced, as a put replaces it
    assert (outside / "secret").read_bytes() == b"not ours"   # never written through it
    assert not (root(t) / "link").is_symlink()
    assert (root(t) / "link" / "secret").read_bytes() == b"kept"


def test_the_trash_is_never_listed_stated_or_deleted(t):
    write(t, "a/kept.txt", b"k")
    write(t, "a/other.txt", b"o")
    t.keep("a/kept.txt", stamp=STAMP, coming="absent")
    assert [e.path for e in t.list()] == ["a", "a/other.txt"]
    assert [e.path for e in t.list("a")] == ["a", "a/other.txt"]
    with pytest.raises(PermanentError):
        t.stat(".mirrord/trash")
    with pytest.raises(PermanentError):
        t.delete(".mirrord", tree=True)
    [res] = t.sync([SyncItem(".mirrord/trash", "absent", tree=True)])
    assert isinstance(res.error, PermanentError)
    [res] = t.sync([SyncItem("a/kept.txt", "absent")])   # the delete after the keep: a no-op
    assert res.error is None
    assert kept_path(t, "deleted", "a/kept.txt").read_bytes() == b"k"


def test_trash_list_prefix_is_exact_and_purge_keeps_the_rest(t):
    for p in ("x[1]/f", "x1/f", "x[1]f", "y/f"):
        write(t, p, b"." * 3)
        t.keep(p, stamp=STAMP, coming="absent")
    assert sorted(k.path for k in t.trash_list("x[1]")) == ["x[1]/f"]
    assert sorted(k.path for k in t.trash_list("x1")) == ["x1/f"]
    t.trash_purge(list(t.trash_list("x[1]")) + list(t.trash_list("x1")))
    assert sorted(k.path for k in t.trash_list()) == ["x[1]f", "y/f"]
    assert not (root(t) / TRASH / f"{STAMP}.deleted" / "x1").exists()
    t.trash_purge(list(t.trash_list()))
    t.trash_purge(list(t.trash_list()))   # nothing left: not an error
    assert os.listdir(root(t) / TRASH) == []


def test_restore_is_atomic_over_a_directory_and_makes_parents(t):
    write(t, "r/f.txt", b"kept", mode=0o600)
    t.keep("r/f.txt", stamp=STAMP, coming="absent")
    [k] = t.trash_list()
    (root(t) / "new/deep/f.txt").mkdir(parents=True)   # a directory stands in the way
    entry = t.trash_restore(k, "new/deep/f.txt")
    st = os.stat(root(t) / "new/deep/f.txt")
    assert (st.st_mtime_ns, st.st_mode & 0o7777, entry.size) == (MTIME_NS, 0o600, 4)
    assert os.stat(kept_path(t, "deleted", "r/f.txt")).st_ino != st.st_ino   # the kept entry stays
    assert os.listdir(root(t) / ".mirrord/rsync-tmp") == []
    with pytest.raises(NotFound):
        t.trash_restore(dataclasses.replace(k, key=k.key + "x"), "z")
    with pytest.raises(PermanentError):
        t.trash_fetch(dataclasses.replace(k, key=".mirrord/trash/../../etc/passwd"), "/dev/null")


def test_no_key_in_error_messages(sshd, tmp_path):
    key = tmp_path / "unauthorised key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    secret = key.read_text().splitlines()[1]
    cfg = TargetConfig(name="nokey", type="rsync", workers=1, rsync=RsyncOptions(
        host=sshd.host, port=sshd.port, user=sshd.user, path=str(sshd.new_root()),
        ssh_key=key, known_hosts=sshd.known_hosts, strict_host_key_checking="yes"))
    t = targets.create(cfg)
    try:
        [err] = t.keep_many([("a", STAMP, "absent")])
        messages = [str(err)]
        for call in (lambda: list(t.trash_list()), lambda: t.keep("a", stamp=STAMP, coming="file")):
            with pytest.raises(Exception) as info:
                call()
            messages.append(str(info.value))
        for m in messages:
            assert "Permission denied" in m or "cannot connect" in m, m
            assert str(key) not in m and "unauthorised" not in m and secret not in m
    finally:
        t.close()


def test_an_overwrite_kept_by_an_earlier_try_is_not_kept_again_under_a_new_stamp(t, tmp_path):
    """As on the local target: a retry after a restart has a new stamp; the file's second
    link says it is kept already."""
    write(t, "k.txt", b"old")
    assert t.keep("k.txt", stamp=STAMP, coming="file") == 3
    later = stamp_of(1_700_000_100.0)
    assert t.keep("k.txt", stamp=later, coming="file") == 0
    assert [(k.stamp, k.why) for k in t.trash_list()] == [(STAMP, "overwritten")]
    new = tmp_path / "new"
    new.write_bytes(b"new")
    t.put("k.txt", str(new), size=3, mtime=new.stat().st_mtime)
    assert t.keep("k.txt", stamp=later, coming="file") == 3
    assert sorted(k.stamp for k in t.trash_list()) == [STAMP, later]


@pytest.mark.parametrize("where", ["outside the root", "inside the root"])
def test_an_overwrite_of_a_file_with_an_operators_link_is_kept(t, tmp_path, where):
    """A second link to the mirror's file that the trash does not hold (an operator's
    rsnapshot --link-dest or `cp -al` snapshot of the mirror host) is no sign of an
    earlier keep: the overwrite is kept (it kept nothing before: a review, helper-155);
    one the trash holds at that path (an earlier try whose put did not happen) is not
    kept a second time under a later stamp."""
    f = write(t, "doc.txt", b"doc original")
    snap = (tmp_path / "snap") if where == "outside the root" else root(t) / "snap"
    snap.mkdir()
    os.link(f, snap / "doc.txt")
    assert t.keep("doc.txt", stamp=STAMP, coming="file") == 12
    assert kept_path(t, "overwritten", "doc.txt").read_bytes() == b"doc original"
    later = stamp_of(1_700_000_060.5)
    assert t.keep("doc.txt", stamp=later, coming="file") == 0   # the trash holds it now
    assert [(k.path, k.stamp) for k in t.trash_list("doc.txt")] == [("doc.txt", STAMP)]
