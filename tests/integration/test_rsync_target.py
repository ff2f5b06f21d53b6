"""rsync-specific promises, against the real sshd fixture (the "remote" is this machine).

The conformance suite (tests/targets) checks the Target contract; these check what
only the rsync target can get wrong: names that look like options or hold control
characters, one rsync and no new SSH handshake per batch, outages, symlinks at the
source, a full disk on the receiver, and a listing that matches a local walk.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mirrord import targets
from mirrord.config import RsyncOptions, TargetConfig
from mirrord.errors import NotFound, RetryableError
from mirrord.targets.model import SyncItem
from mirrord.treewalk import entry_key, walk

MTIME_NS = 1_600_000_000_123_456_789

TRICKY = [
    "-e", "--rsh=x", "--delete", "-rf", "--files-from=-", ":colon", "new\nline", "tab\there",
    "trailing space ", "*", "$(touch pwned)", "a'b\"c", "back\\slash", "\u00fcnic\u00f6de",
    os.fsdecode(b"latin1-caf\xe9-\xff.bin"),   # not UTF-8: surrogateescape round trip
]


def make_target(sshd, root: Path | None = None, **overrides):
    opts = dict(host=sshd.host, port=sshd.port, user=sshd.user, path=str(root or sshd.new_root()),
                ssh_key=sshd.key_path, known_hosts=sshd.known_hosts, strict_host_key_checking="yes")
    opts.update(overrides)
    return targets.create(TargetConfig(name="host", type="rsync", workers=2, rsync=RsyncOptions(**opts)))


@pytest.fixture
def rsync_target(sshd):
    t = make_target(sshd)
    t.open()
    yield t
    t.close()


@pytest.fixture
def src(tmp_path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root


def write(src: Path, rel: str, data: bytes, mtime_ns: int = MTIME_NS) -> SyncItem:
    full = src / rel   # surrogateescape str: pathlib hands the original bytes to the OS
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(data)
    os.utime(full, ns=(mtime_ns, mtime_ns))
    return item(src, rel)


def item(src: Path, rel: str, kind: str = "file", *, dest: str = "", tree: bool = False) -> SyncItem:
    path = f"{dest}/{rel}" if dest else rel
    return SyncItem(path, kind, os.path.join(src, rel), tree=tree,
                    source_root=str(src), source_rel=rel)


def remote(t) -> Path:
    return Path(t.opts.path)


def accepted_logins(sshd) -> int:
    return sshd.log_path.read_text(errors="replace").count("Accepted publickey")


def ok(results) -> None:
    errors = [(r.item.path, r.error) for r in results if r.error is not None]
    assert not errors


# ---------------------------------------------------------------- names


def test_option_like_and_control_character_names_are_files(rsync_target, src, tmp_path):
    ok(rsync_target.sync([write(src, name, os.fsencode(name) * 2) for name in TRICKY]))
    on_disk = sorted(os.listdir(os.fsencode(remote(rsync_target))))
    assert on_disk == sorted([b".mirrord"] + [os.fsencode(n) for n in TRICKY])
    for name in TRICKY:
        assert rsync_target.read(name) == os.fsencode(name) * 2
        st = os.stat(remote(rsync_target) / name)
        assert st.st_mtime_ns == MTIME_NS   # rsync keeps nanoseconds
    assert not Path(os.getcwd(), "pwned").exists() and not (Path.home() / "pwned").exists()
    listed = [e.path for e in rsync_target.list()]
    assert sorted(listed, key=os.fsencode) == listed and set(listed) == set(TRICKY)


def test_tricky_names_through_every_single_operation(rsync_target, tmp_path):
    local = tmp_path / "payload"
    local.write_bytes(b"payload")
    for name in TRICKY:
        rsync_target.put(name, str(local), size=7, mtime=1.0)
        assert rsync_target.stat(name).size == 7
        assert rsync_target.checksum(name) is not None
        rsync_target.move(name, name + ".moved")
        assert rsync_target.read(name + ".moved") == b"payload"
        rsync_target.delete(name + ".moved")
        assert rsync_target.stat(name + ".moved") is None
    assert os.listdir(remote(rsync_target)) == [".mirrord"]


def test_put_from_an_open_descriptor(rsync_target, tmp_path):
    f = tmp_path / "opened"
    f.write_bytes(b"read through /proc/self/fd")
    os.utime(f, ns=(MTIME_NS, MTIME_NS))
    fd = os.open(f, os.O_RDONLY)
    try:
        f.unlink()   # only the descriptor is left
        entry = rsync_target.put("via/fd", f"/proc/self/fd/{fd}", size=26, mtime=MTIME_NS / 1e9)
    finally:
        os.close(fd)
    assert entry.size == 26 and rsync_target.read("via/fd") == b"read through /proc/self/fd"
    assert rsync_target.stat("via/fd").mtime_ns == MTIME_NS


# ---------------------------------------------------------------- batches


def test_500_files_in_one_rsync_over_the_existing_connection(rsync_target, sshd, src):
    items = [write(src, f"d{i % 7}/f{i:03d}.bin", os.urandom(512 + i)) for i in range(500)]
    logins, runs = accepted_logins(sshd), rsync_target.rsync_runs
    start = time.monotonic()
    results = rsync_target.sync(items)
    elapsed = time.monotonic() - start
    ok(results)
    assert rsync_target.rsync_runs - runs == 1
    assert accepted_logins(sshd) == logins, "a batch must not open a new SSH connection"
    for it in items[::50]:
        st = os.stat(remote(rsync_target) / it.path)
        assert st.st_size == os.stat(src / it.source_rel).st_size and st.st_mtime_ns == MTIME_NS
    assert [r.entry.size for r in results] == [os.stat(src / it.source_rel).st_size for it in items]
    print(f"500 files in one sync(): {elapsed * 1000:.0f} ms")


def test_concurrent_workers_share_one_connection(rsync_target, sshd, src):
    batches = [[write(src, f"w{w}/b{b}/f{i}", b"%d" % i) for i in range(5)]
               for w in range(12) for b in range(3)]
    logins = accepted_logins(sshd)
    with ThreadPoolExecutor(max_workers=12) as pool:   # more than sshd's MaxSessions (10)
        for results in pool.map(rsync_target.sync, batches):
            ok(results)
    assert accepted_logins(sshd) == logins
    assert sum(1 for e in rsync_target.list() if not e.is_dir) == 12 * 3 * 5


def test_dest_prefix_and_mixed_kinds_in_one_batch(rsync_target, src):
    rsync_target.sync([write(src, "gone.txt", b"x"), write(src, "keep/old", b"x")])
    (src / "gone.txt").unlink()
    (src / "newdir").mkdir()
    batch = [write(src, "a/b/c.txt", b"abc", ), item(src, "newdir", "dir"), item(src, "gone.txt", "absent")]
    ok(rsync_target.sync([SyncItem(f"pre fix/{i.path}", i.kind, i.local, source_root=i.source_root,
                                   source_rel=i.source_rel) for i in batch]))
    ok(rsync_target.sync(batch))
    files = {e.path: e for e in rsync_target.list()}
    assert files["pre fix/a/b/c.txt"].size == 3 and files["a/b/c.txt"].size == 3
    assert files["pre fix/newdir"].is_dir and files["newdir"].is_dir
    assert "gone.txt" not in files and "keep/old" in files


def test_file_replaces_a_non_empty_directory_and_back(rsync_target, src):
    ok(rsync_target.sync([write(src, "x/inner/deep", b"1")]))
    (src / "x/inner/deep").unlink()
    (src / "x/inner").rmdir()
    (src / "x").rmdir()
    ok(rsync_target.sync([write(src, "x", b"now a file")]))
    assert rsync_target.read("x") == b"now a file"
    (src / "x").unlink()
    ok(rsync_target.sync([write(src, "x/y", b"a file under a dir again")]))
    assert rsync_target.read("x/y") == b"a file under a dir again"


def test_tree_items_remove_everything_below(rsync_target, src):
    paths = ["t/a", "t/b/c", "t/b/d/e", "tt/keep", "u/x", "u/y/z"]
    ok(rsync_target.sync([write(src, p, b"1") for p in paths]))
    for p in ["t/a", "t/b/c", "t/b/d/e", "u/x", "u/y/z"]:
        (src / p).unlink()
    for d in ["t/b/d", "t/b", "t", "u/y"]:
        (src / d).rmdir()
    ok(rsync_target.sync([item(src, "t", "absent", tree=True), item(src, "u", "dir", tree=True)]))
    listed = {e.path: e.is_dir for e in rsync_target.list()}
    assert listed == {"tt": True, "tt/keep": False, "u": True}
    rsync_target.delete("tt", tree=True)
    assert {e.path for e in rsync_target.list()} == {"u"}


# ---------------------------------------------------------------- symlinks


def test_symlinks_at_the_source_are_never_followed(rsync_target, src, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not ship me")
    rsync_target.sync([write(src, "link.txt", b"old content"), write(src, "inner/real", b"r")])
    (src / "link.txt").unlink()
    (src / "link.txt").symlink_to(outside / "secret")
    (src / "dirlink").symlink_to(outside)
    (src / "inner/up").symlink_to("../../outside")
    items = [item(src, "link.txt"), item(src, "dirlink/secret"), item(src, "inner/up/secret"),
             item(src, "dirlink", "dir"), item(src, "inner/real")]
    results = rsync_target.sync(items)
    ok(results)
    listed = {e.path for e in rsync_target.list()}
    assert listed == {"inner", "inner/real"}   # the symlinked file counts as deleted
    blobs = [p.read_bytes() for p in remote(rsync_target).rglob("*") if p.is_file()]
    assert b"do not ship me" not in blobs
    assert not any(p.is_symlink() for p in remote(rsync_target).rglob("*"))


# ---------------------------------------------------------------- failures


# Bounded by ConnectTimeout (2 s): every call must end in RetryableError instead of hanging;
# the test's own timeout is the bound, never a measured duration.
@pytest.mark.timeout(90)
def test_outage_is_retryable_quickly_and_recovers(sshd, src):
    t = make_target(sshd, connect_timeout=2.0)
    t.open()
    try:
        ok(t.sync([write(src, "before", b"1")]))
        sshd.stop()
        try:
            results = t.sync([write(src, "during", b"2"), write(src, "during2", b"3")])
            assert all(isinstance(r.error, RetryableError) for r in results)
            with pytest.raises(RetryableError):
                list(t.list())
            with pytest.raises(RetryableError):
                t.stat("before")
            with pytest.raises(RetryableError):
                t.set_meta("before", mode=0o600, mtime_ns=MTIME_NS)
        finally:
            sshd.start()
        ok(t.sync([item(src, "during"), item(src, "during2")]))
        assert {e.path for e in t.list()} == {"before", "during", "during2"}
    finally:
        t.close()


def test_receiver_disk_full_is_retryable(sshd, src):
    root = sshd.new_root()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(root)], check=True)
    try:
        t = make_target(sshd, root)
        t.open()
        try:
            results = t.sync([write(src, "big", os.urandom(1 << 20)), write(src, "small", b"s")])
            assert all(isinstance(r.error, RetryableError) for r in results)
            assert "disk full" in str(results[0].error)
            assert os.listdir(root / ".mirrord/rsync-tmp") == []   # no partial file left behind
            assert t.stat("big") is None
        finally:
            t.close()
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_missing_source_root_deletes_nothing(rsync_target, src, tmp_path):
    ok(rsync_target.sync([write(src, "keep", b"k")]))
    unmounted = str(tmp_path / "unmounted")
    gone = [SyncItem("keep", "absent", source_root=unmounted, source_rel="keep"),
            SyncItem("keep", "absent", tree=True, source_root=unmounted, source_rel="keep")]
    assert all(isinstance(r.error, RetryableError) for r in rsync_target.sync(gone))
    assert rsync_target.read("keep") == b"k"
    with pytest.raises(NotFound):
        rsync_target.move("nope", "there")


# ---------------------------------------------------------------- listing


def test_list_of_2000_entries_equals_a_local_walk(sshd):
    root = sshd.new_root()
    names = ["a", "a.b", "a-b", "A", "a0", "z z", "-x", "tab\tt", "nl\nn", os.fsdecode(b"\xff\xfe")]
    count = 0
    for i in range(40):
        d = root / names[i % len(names)] / f"sub{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        count += 1
        for j in range(49):
            p = d / f"{names[j % len(names)]}{j}"
            p.write_bytes(b"x" * j)
            ns = MTIME_NS + i * 1_000_003 + j
            os.utime(p, ns=(ns, ns))
            count += 1
    t = make_target(sshd, root)
    t.open()
    try:
        listed = list(t.list())
        local = list(walk(str(root), excluded=lambda rel: rel == ".mirrord"))
        assert len(listed) >= 2000
        assert listed == local
        assert [entry_key(e) for e in listed] == sorted(entry_key(e) for e in listed)
        prefix = names[9]
        below = [e for e in local if e.path == prefix or e.path.startswith(prefix + "/")]
        assert list(t.list(prefix)) == below
        assert list(t.list("no/such/prefix")) == []
    finally:
        t.close()


# ------------------------------------------------------------ modes and metadata-only items

def meta_item(src: Path, rel: str) -> SyncItem:
    st = os.lstat(src / rel)
    return SyncItem(rel, "file", "", st.st_size, st.st_mtime, source_root=str(src), source_rel=rel,
                    mode=st.st_mode & 0o7777, mtime_ns=st.st_mtime_ns, meta_only=True)


def test_meta_only_batch_is_one_remote_command_on_the_same_inodes(rsync_target, src, monkeypatch):
    names = [f"f{i:02d} {'x' * i}" for i in range(30)]
    ok(rsync_target.sync([write(src, n, n.encode()) for n in names]))
    inodes = {n: os.lstat(remote(rsync_target) / n).st_ino for n in names}
    for i, n in enumerate(names):
        os.chmod(src / n, 0o600 if i % 2 else 0o644)
        os.utime(src / n, ns=(MTIME_NS + i, MTIME_NS + i))
    runs, calls = rsync_target.rsync_runs, []
    real_run = rsync_target.conn.run   # every remote command goes through the connection
    monkeypatch.setattr(rsync_target.conn, "run", lambda *a, **k: calls.append(a) or real_run(*a, **k))
    ok(rsync_target.sync([meta_item(src, n) for n in names]))
    assert rsync_target.rsync_runs == runs and len(calls) == 1   # no rsync, one ssh session
    for i, n in enumerate(names):
        st = os.lstat(remote(rsync_target) / n)
        assert (st.st_ino, st.st_mode & 0o7777, st.st_mtime_ns) == \
            (inodes[n], 0o600 if i % 2 else 0o644, MTIME_NS + i)


def test_meta_only_item_the_host_lost_is_sent_whole_in_the_same_batch(rsync_target, src):
    ok(rsync_target.sync([write(src, "a", b"aaa"), write(src, "b", b"bbb")]))
    (remote(rsync_target) / "b").unlink()
    os.chmod(src / "b", 0o600)
    os.chmod(src / "a", 0o600)
    runs = rsync_target.rsync_runs
    ok(rsync_target.sync([meta_item(src, "a"), meta_item(src, "b")]))
    assert rsync_target.rsync_runs == runs + 1
    assert (remote(rsync_target) / "b").read_bytes() == b"bbb"
    assert {n: os.lstat(remote(rsync_target) / n).st_mode & 0o777 for n in "ab"} == {"a": 0o600, "b": 0o600}


def test_meta_only_item_whose_source_vanished_deletes(rsync_target, src):
    ok(rsync_target.sync([write(src, "v", b"v")]))
    it = meta_item(src, "v")
    (src / "v").unlink()
    ok(rsync_target.sync([it]))
    assert not (remote(rsync_target) / "v").exists()


def test_source_directory_modes_arrive_exactly(rsync_target, src):
    (src / "images" / "a" / "b").mkdir(parents=True)
    for d, mode in [("images", 0o750), ("images/a", 0o775), ("images/a/b", 0o700)]:
        os.chmod(src / d, mode)
    ok(rsync_target.sync([item(src, "images", "dir"), item(src, "images/a/b", "dir"),
                          write(src, "images/a/b/f.png", b"png")]))
    modes = {d: os.lstat(remote(rsync_target) / d).st_mode & 0o7777
             for d in ("images", "images/a", "images/a/b")}
    assert modes == {"images": 0o750, "images/a": 0o775, "images/a/b": 0o700}   # 0775: no umask
    os.chmod(src / "images", 0o755)   # a chmod of a directory arrives as a dir item
    ok(rsync_target.sync([item(src, "images", "dir")]))
    assert os.lstat(remote(rsync_target) / "images").st_mode & 0o7777 == 0o755


def test_set_meta_and_mkdir_never_follow_a_symlink_out_of_the_root(rsync_target, tmp_path):
    outside = tmp_path / "outside"
    (outside / "d").mkdir(parents=True)
    (outside / "f").write_bytes(b"secret")
    os.chmod(outside / "f", 0o600)
    os.symlink(outside, remote(rsync_target) / "link")
    os.symlink(outside / "f", remote(rsync_target) / "flink")
    for path in ("link/f", "flink"):
        with pytest.raises(NotFound):
            rsync_target.set_meta(path, mode=0o644, mtime_ns=MTIME_NS)
    assert os.lstat(outside / "f").st_mode & 0o777 == 0o600
    before = os.lstat(outside / "d").st_mode & 0o777
    rsync_target.mkdir("link/d", mode=0o700)   # the symlink is replaced, as a put replaces it
    assert os.lstat(outside / "d").st_mode & 0o777 == before
    made = remote(rsync_target) / "link" / "d"
    assert not made.parent.is_symlink() and os.lstat(made).st_mode & 0o777 == 0o700


def test_list_and_stat_report_modes(rsync_target, src):
    os.chmod(write(src, "x", b"1").local, 0o640)
    (src / "dd").mkdir()
    os.chmod(src / "dd", 0o750)
    ok(rsync_target.sync([item(src, "x"), item(src, "dd", "dir")]))
    got = {e.path: (e.mode, e.mtime_ns if not e.is_dir else None) for e in rsync_target.list()}
    assert got == {"x": (0o640, MTIME_NS), "dd": (0o750, None)}
    assert rsync_target.stat("x").mode == 0o640


def test_set_meta_on_tricky_names_in_one_batch(rsync_target, src):
    names = TRICKY + ["d/*", "sub dir/x y"]
    ok(rsync_target.sync([write(src, n, b"t") for n in names]))
    for n in names:
        os.chmod(src / n, 0o600)
        os.utime(src / n, ns=(MTIME_NS + 7, MTIME_NS + 7))
    results = rsync_target.sync([meta_item(src, n) for n in names])
    ok(results)
    for n in names:
        st = os.lstat(remote(rsync_target) / n)
        assert (st.st_mode & 0o777, st.st_mtime_ns) == (0o600, MTIME_NS + 7), n
    assert all(r.entry.mode == 0o600 and r.entry.mtime_ns == MTIME_NS + 7 for r in results)


# ---------------------------------------------------------------- what a crash leaves


def test_open_removes_partial_temp_files_a_crash_left(sshd, src):
    root = sshd.new_root()
    tmp = root / ".mirrord" / "rsync-tmp"
    tmp.mkdir(parents=True)
    # what an rsync receiver cut short leaves in --temp-dir: ".NAME.XXXXXX", half written
    (tmp / ".video.webm.Ab12Cd").write_bytes(b"\0" * 300_000)
    (tmp / "meta.Xy12Zw").write_bytes(b"{")             # a heartbeat write cut short
    (root / ".mirrord" / ".meta.Qq11Rr").write_bytes(b"{")   # where older versions wrote it
    (root / ".mirrord" / "heartbeat.json").write_bytes(b"{}")
    (root / ".mirrord-tmp-user.jpg").write_bytes(b"a user's own file")
    t = make_target(sshd, root)
    t.open()
    try:
        assert os.listdir(tmp) == []
        own = sorted(os.listdir(root / ".mirrord"))   # and this open's witness (root_guard)
        assert own == ["heartbeat.json", f"open-{t.guard.token}", "rsync-tmp"], own
        assert t.read(".mirrord-tmp-user.jpg") == b"a user's own file"
        assert [e.path for e in t.list()] == [".mirrord-tmp-user.jpg"]
        ok(t.sync([write(src, "after", b"1")]))   # the temp dir still works
        t.write_meta("heartbeat.json", b'{"v": 2}')
        assert t.read_meta("heartbeat.json") == b'{"v": 2}' and os.listdir(tmp) == []
    finally:
        t.close()


def test_open_leaves_the_temp_files_of_a_target_open_elsewhere(sshd, src):
    """A second opener (`mirrord reconcile` beside the daemon) must not remove the first
    one's transfers in flight: only an opener that has the target to itself sweeps."""
    root = sshd.new_root()
    first = make_target(sshd, root)
    first.open()
    try:
        in_flight = root / ".mirrord" / "rsync-tmp" / ".big.bin.Zz99Yy"
        in_flight.write_bytes(b"being written")
        second = make_target(sshd, root)
        second.open()
        second.close()
        assert in_flight.exists()
    finally:
        first.close()
    again = make_target(sshd, root)
    again.open()
    again.close()
    assert not in_flight.exists()
