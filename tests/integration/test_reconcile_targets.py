"""`mirrord reconcile` against every real target type: local, S3 (SeaweedFS), rsync (sshd).

Each test builds a source tree and a config file, runs the real command
(in-process, through mirrord.cli.main), damages the target out of band the way
an operator, a bug or a lost event would, and checks what the pass found and
that the target ends byte for byte equal to the source. No mocks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from mirrord import targets as target_registry
from mirrord.cli.main import main
from mirrord.config import load

KINDS = ["local", "s3", "rsync"]


class Remote:
    """Out-of-band access to a target's storage (not through mirrord)."""

    def __init__(self, kind: str, root: Path | None = None, s3=None, bucket: str = "",
                 prefix: str = ""):
        self.kind, self.root, self.s3, self.bucket, self.prefix = kind, root, s3, bucket, prefix

    def write(self, path: str, data: bytes, *, mtime_ns: int | None = None) -> None:
        if self.kind == "s3":
            self.s3.put_object(Bucket=self.bucket, Key=self.prefix + path, Body=data)
            return
        full = self.root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        if mtime_ns is not None:
            os.utime(full, ns=(mtime_ns, mtime_ns))

    def remove(self, path: str) -> None:
        if self.kind == "s3":
            self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + path)
        elif (self.root / path).is_dir():
            shutil.rmtree(self.root / path)
        else:
            (self.root / path).unlink()

    def exists(self, path: str) -> bool:
        if self.kind == "s3":
            found = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + path)
            return any(o["Key"] == self.prefix + path for o in found.get("Contents", []))
        return os.path.lexists(self.root / path)


class Site:
    """A source tree, a target of one kind, and the config file tying them together."""

    def __init__(self, kind: str, base: Path, target_lines: str, remote: Remote):
        self.kind, self.base, self.remote = kind, base, remote
        self.src = base / "src"
        self.src.mkdir(parents=True, exist_ok=True)
        self.ini = base / "mirrord.ini"
        self.target_lines = target_lines
        self.configure()

    def configure(self, **reconcile: str) -> None:
        extra = "".join(f"{k} = {v}\n" for k, v in reconcile.items())
        self.ini.write_text(
            f"[mirrord]\nstate_dir = {self.base / 'state'}\nlog_level = warning\n\n"
            f"[source:up]\npath = {self.src}\ntargets = t\nexclude = *.tmp\n\n"
            f"[target:t]\n{self.target_lines}\n[reconcile]\n{extra}")

    def reconcile(self, *args: str) -> tuple[int, dict]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main(["-c", str(self.ini), "reconcile", "--json", *args])
        return rc, json.loads(out.getvalue())["targets"]["t"]

    def open_target(self):
        target = target_registry.create(load(self.ini).targets["t"])
        target.open()
        return target

    def target_files(self) -> dict[str, bytes]:
        target = self.open_target()
        try:
            return {e.path: target.read(e.path) for e in target.list() if not e.is_dir}
        finally:
            target.close()

    def source_files(self) -> dict[str, bytes]:
        out = {}
        for dirpath, _dirs, files in os.walk(self.src):
            for name in files:
                full = Path(dirpath, name)
                rel = str(full.relative_to(self.src))
                if not rel.endswith(".tmp"):
                    out[rel] = full.read_bytes()
        return out

    def write(self, rel: str, data: bytes) -> Path:
        full = self.src / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(data)
        return full

    def assert_mirrored(self) -> None:
        assert self.target_files() == self.source_files()


def make_site(kind: str, tmp_path: Path, request) -> Site:
    if kind == "local":
        root = tmp_path / "mirror"
        return Site(kind, tmp_path, f"type = local\npath = {root}\nfsync = no\n",
                    Remote(kind, root=root))
    if kind == "rsync":
        sshd = request.getfixturevalue("sshd")
        root = sshd.new_root()
        lines = (f"type = rsync\nhost = {sshd.host}\nport = {sshd.port}\nuser = {sshd.user}\n"
                 f"path = {root}\nssh_key = {sshd.key_path}\nknown_hosts = {sshd.known_hosts}\n"
                 f"strict_host_key_checking = yes\n")
        return Site(kind, tmp_path, lines, Remote(kind, root=root))
    weed = request.getfixturevalue("seaweedfs")
    bucket = weed.new_bucket()
    lines = (f"type = s3\nbucket = {bucket}\nprefix = pre fix/\nendpoint_url = {weed.endpoint_url}\n"
             f"region = {weed.region}\naccess_key_id = {weed.access_key}\n"
             f"secret_access_key = {weed.secret_key}\naddressing_style = path\n")
    return Site(kind, tmp_path, lines, Remote(kind, s3=weed.client(), bucket=bucket,
                                              prefix="pre fix/"))


@pytest.fixture(params=KINDS)
def site(request, tmp_path) -> Site:
    return make_site(request.param, tmp_path, request)


def seed(site: Site) -> None:
    site.write("a.txt", b"alpha")
    site.write("dir/b.txt", b"bravo")
    site.write("dir/sub/c.txt", b"charlie")
    site.write("keep.txt", b"keep me")
    site.write("big/e.bin", os.urandom(200_000))
    site.write("skip.tmp", b"excluded")


def entries(site: Site, files: int, dirs: int) -> int:
    """What the pass counts as entries: files, plus directories where the target keeps them."""
    return files + (dirs if site.kind != "s3" else 0)


# ---------------------------------------------------------------- drift scenarios

def test_first_pass_copies_everything_then_in_sync(site):
    seed(site)
    rc, t = site.reconcile()
    assert rc == 0 and t["in_sync"]
    assert t["compared"] == 5
    assert t["missing"] == entries(site, 5, 3)
    assert t["bytes"] == sum(len(v) for v in site.source_files().values())
    site.assert_mirrored()
    rc, t = site.reconcile()
    assert rc == 0
    assert (t["missing"], t["changed"], t["extra"], t["deleted"], t["bytes"]) == (0, 0, 0, 0, 0)


def test_every_kind_of_drift_is_found_and_repaired(site):
    seed(site)
    assert site.reconcile()[0] == 0
    site.remote.remove("a.txt")                                   # missing on the target
    site.write("dir/b.txt", b"bravo, now longer")                 # size differs
    st = os.stat(site.src / "keep.txt")
    os.utime(site.src / "keep.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 7_000_000_000))  # mtime
    site.remote.write("dir/sub/c.txt", b"CHARLIE")                # changed out of band, same size
    site.remote.write("stray.txt", b"not at the source")          # extra on the target
    site.remote.write("gone/deep/x.txt", b"extra tree")           # extra directory tree

    rc, t = site.reconcile("--no-delete")
    assert rc == 0, t
    assert t["missing"] == 1
    assert t["changed"] == 3
    assert t["extra"] == entries(site, 2, 2)
    assert t["deleted"] == 0 and t["kept_extra"] == t["extra"]
    assert site.remote.exists("stray.txt")
    files = site.target_files()
    assert files.pop("stray.txt") == b"not at the source"
    assert files.pop("gone/deep/x.txt") == b"extra tree"
    assert files == site.source_files()

    rc, t = site.reconcile()                                      # delete = yes (the default)
    assert rc == 0, t
    assert (t["missing"], t["changed"]) == (0, 0)
    assert t["extra"] == t["deleted"] == entries(site, 2, 2)
    assert not site.remote.exists("stray.txt")
    assert not site.remote.exists("gone/deep/x.txt")
    site.assert_mirrored()

    rc, t = site.reconcile()
    assert rc == 0 and (t["missing"], t["changed"], t["extra"]) == (0, 0, 0)


def test_s3_same_size_overwrite_is_caught_by_its_etag(request, tmp_path):
    site = make_site("s3", tmp_path, request)
    site.write("photo.jpg", b"A" * 4096)
    assert site.reconcile()[0] == 0
    site.remote.write("photo.jpg", b"B" * 4096)   # same size; the listing's time is newer
    rc, t = site.reconcile()
    assert rc == 0 and t["changed"] == 1
    assert site.target_files() == {"photo.jpg": b"A" * 4096}


def test_checksum_mode_finds_same_size_same_mtime_difference(site):
    seed(site)
    assert site.reconcile()[0] == 0
    if site.kind == "s3":
        # What the state database knew is lost (moved aside after damage): the listing alone
        # cannot tell this overwrite apart, the content hash can.
        for f in (site.base / "state").glob("journal.db*"):
            f.unlink()
        site.remote.write("dir/b.txt", b"BRAVO")
    else:
        mtime = os.stat(site.src / "dir/b.txt").st_mtime_ns
        site.remote.write("dir/b.txt", b"BRAVO", mtime_ns=mtime)
    rc, t = site.reconcile()
    assert rc == 0 and t["changed"] == 0           # size and time agree: the cheap pass is fooled
    rc, t = site.reconcile("--checksum")
    assert rc == 0 and t["changed"] == 1
    site.assert_mirrored()


# ---------------------------------------------------------------- safety

def test_max_delete_count_refuses_every_delete_of_the_pass(site):
    seed(site)
    site.configure(max_delete="2")
    assert site.reconcile()[0] == 0
    for i in range(3):
        site.remote.write(f"stray{i}.txt", b"x")
    site.remote.remove("a.txt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["-c", str(site.ini), "reconcile"])
    text = out.getvalue()
    assert rc == 1
    assert "refusing to delete 3 entries" in text and "[reconcile] max_delete = 2" in text
    assert all(site.remote.exists(f"stray{i}.txt") for i in range(3))
    assert site.target_files()["a.txt"] == b"alpha"    # repairs still happen
    site.configure(max_delete="3")
    rc, t = site.reconcile()
    assert rc == 0 and t["deleted"] == 3


def test_max_delete_percent(site):
    for i in range(18):
        site.write(f"f{i:02d}", b"data")
    site.configure(max_delete="10%")
    assert site.reconcile()[0] == 0
    site.remote.write("x1", b"x")
    site.remote.write("x2", b"x")
    rc, t = site.reconcile()                       # 2 of 20 entries = 10%: allowed
    assert rc == 0 and t["deleted"] == 2
    for i in range(3):
        site.remote.write(f"y{i}", b"x")           # 3 of 21 = 14.3%: refused
    rc, t = site.reconcile()
    assert rc == 1 and t["deleted"] == 0 and t["refused_deletes"] == 3
    assert "3 of 21 entries (14.3%)" in t["delete_refusal"][0]
    assert "[reconcile] max_delete = 10%" in t["delete_refusal"][0]
    assert site.remote.exists("y0")


def test_empty_source_root_refuses_deletes(site):
    seed(site)
    assert site.reconcile()[0] == 0
    shutil.rmtree(site.src)
    site.src.mkdir()                               # an unmounted mount point looks like this
    before = site.target_files()
    rc, t = site.reconcile()
    assert rc == 1 and t["deleted"] == 0 and t["refused_deletes"] == t["extra"] > 0
    assert "is empty (unmounted?)" in t["delete_refusal"][0]
    assert site.target_files() == before


def test_missing_source_root_refuses_deletes(request, tmp_path):
    site = make_site("local", tmp_path, request)
    seed(site)
    assert site.reconcile()[0] == 0
    shutil.rmtree(site.src)
    before = site.target_files()
    rc, t = site.reconcile()
    assert rc == 1 and "missing or not a directory" in t["errors"][0]
    assert site.target_files() == before


def test_meta_area_is_never_touched(request, tmp_path):
    site = make_site("local", tmp_path, request)
    seed(site)
    site.remote.write(".mirrord/heartbeat.json", b"{}")
    rc, t = site.reconcile()
    assert rc == 0 and t["extra"] == 0
    assert site.remote.exists(".mirrord/heartbeat.json")


# ---------------------------------------------------------------- racing with live writes

@pytest.mark.parametrize("kind", ["local", "s3"])
def test_pass_racing_with_live_writes_ends_consistent(kind, tmp_path, request):
    """A writer creates and deletes files while a pass runs: nothing at the source is deleted
    from the target, nothing deleted at the source comes back, and the next pass converges."""
    site = make_site(kind, tmp_path, request)
    base = {f"base/{i // 50:02d}/f{i:04d}": f"base {i}".encode() for i in range(600)}
    for rel, data in base.items():
        site.write(rel, data)
    assert site.reconcile()[0] == 0
    for i in range(40):                             # extras; the writer re-creates some at the source
        site.remote.write(f"extra/e{i:02d}", b"old extra")
    stop = threading.Event()
    removed: set[str] = set()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            site.write(f"live/n{i:05d}", b"new %d" % i)
            if i % 3 == 0:
                k = (i * 7) % 600
                victim = f"base/{k // 50:02d}/f{k:04d}"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(site.src / victim)
                    removed.add(victim)
            if i % 4 == 0 and i >= 8:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(site.src / f"live/n{i - 8:05d}")
                    removed.add(f"live/n{i - 8:05d}")
            if i % 5 == 0 and i // 5 < 40:
                site.write(f"extra/e{i // 5:02d}", b"recreated %d" % i)
            i += 1
            time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        rc, t = site.reconcile()
    finally:
        stop.set()
        thread.join()
    assert not t["errors"], t
    src = site.source_files()
    dst = site.target_files()
    for rel in base:                                # nothing at the source was deleted
        if rel in src:
            assert rel in dst, rel
    for rel in dst:                                 # nothing on the target the source never had
        assert rel in src or rel in removed or rel.startswith("extra/"), rel
    rc, t = site.reconcile()
    assert rc == 0, t
    site.assert_mirrored()
