"""keep_deleted through the real `mirrord run` daemon on a local directory, S3 (SeaweedFS)
and a mirror host (rsync over sshd): the primary's mistakes (rm -rf of a directory, an
overwrite in place, a rename over an existing file, a delete) are kept on every target,
`mirrord trash` lists them, `mirrord undelete` puts them back byte for byte with their
mtime, `--to-source` brings them back into the source (and the daemon mirrors that), a
newer source file is never overwritten without --force, and nothing kept ever shows in a
reconcile's counts (issue 17).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mirrord.targets.mtime import exact_ns
from tests.exactness import slack_ns, wait_exact
from tests.reliability.conftest import Env, excluded, live_only_config, poll

BASE_NS = 1_600_000_000_123_456_789       # odd nanoseconds: an mtime rounded anywhere shows
ORIGINAL = {
    "2024/a.bin": b"\x00a" * 3000,
    "2024/sub/b.bin": b"bee\n" * 10,
    "photo.jpg": b"\xff\xd8JPEG original" * 50,
    "old.txt": b"the old text",
    "new.txt": b"the new text, longer",
    "logo.png": b"\x89PNG logo",
}
KEPT = {"2024/a.bin", "2024/sub/b.bin", "photo.jpg", "old.txt", "logo.png"}


def keeping_config(tmp: Path, seaweedfs, sshd) -> Path:
    """The three-target config, reconcile only on demand, keep_deleted = 1d on every target."""
    cfg = live_only_config(tmp, seaweedfs, sshd)
    text = cfg.read_text()
    for kind in ("local", "s3", "rsync"):
        text = text.replace(f"type = {kind}\n", f"type = {kind}\nkeep_deleted = 1d\n")
    cfg.write_text(text)
    return cfg


@pytest.fixture
def env(tmp_path, seaweedfs, sshd):
    e = Env(tmp_path, keeping_config(tmp_path, seaweedfs, sshd))
    try:
        yield e
    finally:
        e.close()


def mtime_of(rel: str) -> int:
    return BASE_NS + sorted(ORIGINAL).index(rel) * 1_000_001


def seed(src: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, ns=(mtime_of(rel), mtime_of(rel)))


def settle(env: Env) -> None:
    """The backlog is empty and every target equals the source (bytes, mtime, mode)."""
    poll(env.drained, timeout=120, what="the backlog drained")
    for target in env.targets.values():
        wait_exact(env.src, target, timeout=120, excluded=excluded)


def trash_doc(env: Env, *args: str) -> dict:
    return json.loads(env.daemon.cli("trash", "--json", *args).stdout)


def reconcile_counts(env: Env) -> dict:
    res = env.daemon.cli("reconcile", "--dry-run", "--json", check=False)
    doc = json.loads(res.stdout)
    return {name: (t["extra"], t["missing"], t["changed"], doc["in_sync"])
            for name, t in doc["targets"].items()}


def make_mistakes(src: Path) -> None:
    shutil.rmtree(src / "2024")                                    # rm -rf of a directory
    fd = os.open(src / "photo.jpg", os.O_WRONLY)                   # overwrite in place
    try:
        os.write(fd, b"ENCRYPTED" * (len(ORIGINAL["photo.jpg"]) // 9))
    finally:
        os.close(fd)
    os.replace(src / "new.txt", src / "old.txt")                   # rename over a file
    os.unlink(src / "logo.png")                                    # delete


def assert_holds_originals(target, paths) -> None:
    for rel in paths:
        assert target.read(rel) == ORIGINAL[rel], f"{target.name}:{rel}"
        entry = target.stat(rel)
        got = exact_ns(entry.mtime, entry.mtime_ns)
        assert abs(got - mtime_of(rel)) <= slack_ns(target), f"{target.name}:{rel} mtime {got}"


def start(env: Env) -> None:
    """Start the daemon, wait for the reconcile pass that follows every start and settle."""
    env.daemon.start()
    poll(lambda: all(t.get("last_reconcile") for t in env.daemon.status()["targets"].values()),
         timeout=120, what="the start-up reconcile pass")
    settle(env)


def test_mistakes_are_kept_listed_and_restored_on_every_target(env):
    seed(env.src, ORIGINAL)
    start(env)
    mistakes_at = _iso(time.time())
    make_mistakes(env.src)
    settle(env)

    doc = trash_doc(env)
    assert set(doc["targets"]) == {"local", "s3", "host"}
    for name, t in doc["targets"].items():
        # what the mistakes destroyed (a start-up pass may have re-put a file: kept earlier)
        mistakes = [e for e in t["entries"] if e["changed"] >= mistakes_at]
        whys = {}
        for e in mistakes:
            whys.setdefault(e["path"], set()).add(e["why"])
            assert e["size"] == len(ORIGINAL[e["path"]]), (name, e)
        # a move may reach a target without server-side moves as delete + put: new.txt kept too
        assert KEPT <= set(whys) <= KEPT | {"new.txt"}, (name, whys)
        assert whys["2024/a.bin"] | whys["2024/sub/b.bin"] <= {"deleted", "dir-removed"}, whys
        assert whys["logo.png"] == {"deleted"} and whys["photo.jpg"] == {"overwritten"}, whys
        assert whys["old.txt"] <= {"overwritten", "deleted"}, (name, whys)
        order = [(e["path"], e["stamp"]) for e in t["entries"]]
        newest_first = sorted(order, key=lambda ps: ps[1], reverse=True)
        assert order == sorted(newest_first, key=lambda ps: ps[0])   # by path, newest first
    text = env.daemon.cli("trash", "--target", "local", "2024").stdout
    assert "2024/sub/b.bin" in text and "photo.jpg" not in text and "total: 2 kept" in text

    # the kept files are in no listing: a reconcile dry run finds every target in sync
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in ("local", "s3", "host")}

    # onto every keeping target (the default): the deleted ones, then the photo as it was
    # before its first overwrite (`--at` its stamp, per target)
    before_undo = time.time()
    dry = env.daemon.cli("undelete", "--dry-run", "2024", "logo.png", "old.txt")
    assert "would restore: s3:2024/sub/b.bin" in dry.stdout
    assert env.targets["local"].read("logo.png") is None
    env.daemon.cli("undelete", "2024", "logo.png", "old.txt")
    firsts = {name: min(e["stamp"] for e in t["entries"]
                        if e["path"] == "photo.jpg" and e["changed"] >= mistakes_at)
              for name, t in doc["targets"].items()}
    for name, first in firsts.items():
        env.daemon.cli("undelete", "--target", name, "--at", first, "photo.jpg")
    for target in env.targets.values():
        assert_holds_originals(target, KEPT)
    # what each restore replaced was kept first (old.txt held new.txt's bytes): undoable
    for name, t in trash_doc(env, "old.txt")["targets"].items():
        undo = [e for e in t["entries"] if e["changed"] >= _iso(before_undo)]
        assert [(e["why"], e["size"]) for e in undo] == \
            [("overwritten", len(ORIGINAL["new.txt"]))], (name, t["entries"])

    # into the source, as it was before the undelete above kept the damaged versions
    env.daemon.cli("undelete", "--target", "local", "--to-source", "--before", _iso(before_undo),
                   "2024", "logo.png", "old.txt")
    env.daemon.cli("undelete", "--target", "local", "--to-source", "--at", firsts["local"],
                   "photo.jpg")
    for rel in KEPT:
        assert (env.src / rel).read_bytes() == ORIGINAL[rel], rel
        assert (env.src / rel).stat().st_mtime_ns == mtime_of(rel), rel
    assert not [p for p in (env.src / "2024").iterdir() if p.name.startswith(".mirrord-")]
    settle(env)
    assert reconcile_counts(env) == {n: (0, 0, 0, True) for n in ("local", "s3", "host")}


def _iso(when: float) -> str:
    """UTC ISO 8601 to the microsecond, as `mirrord trash --json` prints `changed`."""
    return datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="microseconds") \
        .replace("+00:00", "Z")


def test_to_source_never_overwrites_newer_work_without_force(env):
    seed(env.src, {"logo.png": ORIGINAL["logo.png"]})
    start(env)
    os.unlink(env.src / "logo.png")
    settle(env)
    (env.src / "logo.png").write_bytes(b"a newer logo, made after the delete")
    settle(env)

    res = env.daemon.cli("undelete", "--to-source", "logo.png", check=False)
    assert res.returncode == 1, res
    assert "refused: " + str(env.src / "logo.png") in res.stdout and "--force" in res.stdout
    assert (env.src / "logo.png").read_bytes() == b"a newer logo, made after the delete"
    settle(env)                                   # the targets keep the newer file too

    env.daemon.cli("undelete", "--to-source", "--force", "logo.png")
    assert (env.src / "logo.png").read_bytes() == ORIGINAL["logo.png"]
    settle(env)                                   # the daemon mirrored the restored file
    for target in env.targets.values():
        assert_holds_originals(target, ["logo.png"])
    # the newer logo the forced restore replaced is kept on every target in turn
    kept = trash_doc(env, "logo.png")["targets"]
    for name, t in kept.items():
        assert {e["why"] for e in t["entries"]} == {"deleted", "overwritten"}, (name, t)


def versioned_config(tmp: Path, seaweedfs) -> Path:
    """One S3 target on a bucket with versioning enabled: the noncurrent versions are kept."""
    bucket = seaweedfs.new_bucket()
    seaweedfs.client().put_bucket_versioning(Bucket=bucket,
                                             VersioningConfiguration={"Status": "Enabled"})
    (tmp / "src").mkdir()
    cfg = tmp / "mirrord.ini"
    cfg.write_text(f"""
[mirrord]
state_dir = ./state
heartbeat_interval = 500ms

[source:uploads]
path = {tmp / 'src'}
targets = s3

[target:s3]
type = s3
bucket = {bucket}
prefix = up/
endpoint_url = {seaweedfs.endpoint_url}
region = {seaweedfs.region}
access_key_id = {seaweedfs.access_key}
secret_access_key = {seaweedfs.secret_key}
addressing_style = path
keep_deleted = 1d

[reconcile]
every = off
""")
    cfg.chmod(0o600)
    return cfg


def test_versioned_bucket_keeps_noncurrent_versions_and_restores_them(tmp_path, seaweedfs):
    env = Env(tmp_path, versioned_config(tmp_path, seaweedfs), names=("s3",))
    try:
        seed(env.src, {rel: ORIGINAL[rel] for rel in ("photo.jpg", "logo.png")})
        start(env)
        time.sleep(1.1)   # S3 LastModified has whole seconds: the stamps of versions
        mistakes_at = _iso(int(time.time()))
        (env.src / "photo.jpg").write_bytes(b"ENCRYPTED")
        os.unlink(env.src / "logo.png")
        settle(env)

        t = trash_doc(env)["targets"]["s3"]
        assert t["trash_mode"] == "versioning"
        recent = {(e["path"], e["why"]) for e in t["entries"] if e["changed"] >= mistakes_at}
        assert ("logo.png", "deleted") in recent and ("photo.jpg", "overwritten") in recent, t
        assert all(e["version"] for e in t["entries"])
        assert reconcile_counts(env) == {"s3": (0, 0, 0, True)}

        env.daemon.cli("undelete", "--since", mistakes_at, "logo.png")
        assert_holds_originals(env.targets["s3"], ["logo.png"])
        env.daemon.cli("undelete", "--to-source", "--since", mistakes_at, "photo.jpg")
        assert (env.src / "photo.jpg").read_bytes() == ORIGINAL["photo.jpg"]
        env.daemon.cli("undelete", "--to-source", "--since", mistakes_at, "logo.png")
        settle(env)
        assert_holds_originals(env.targets["s3"], ["photo.jpg", "logo.png"])
    finally:
        env.close()


def test_status_counts_what_an_rm_rf_kept_soon_after_it(env):
    """The trash figures in status, the heartbeat and the metrics came from the last
    retention run, every 10 minutes: after an `rm -rf` the operator read "0 files kept"
    for minutes while `mirrord trash` listed them all (a trial). A keeping target's
    delete or overwrite now brings its next run forward (seconds, at most one per minute)."""
    seed(env.src, ORIGINAL)
    start(env)
    gone = [rel for rel in ORIGINAL if rel.startswith("2024/")]
    shutil.rmtree(env.src / "2024")
    settle(env)

    def counted() -> bool:
        targets = env.daemon.status()["targets"]
        return all((t.get("trash") or {}).get("files", 0) >= len(gone) for t in targets.values())
    poll(counted, timeout=150, what="every target's trash figures counting the kept files")
