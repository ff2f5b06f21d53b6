"""`mirrord trash` / `mirrord undelete` without services: paths, times, choosing a version,
restoring onto a target (keep first) and into a source tree (never over newer work).

The target is the MemoryTarget: its keep/trash_* pass the trash conformance suite
(tests/targets/test_trash_conformance.py) like the real targets'.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from mirrord.cli import main as cli_main
from mirrord.cli import trash as trash_cli
from mirrord.config import load
from mirrord.targets.memory import MemoryTarget, Stored
from mirrord.trash import listing, restore
from mirrord.trash.model import DELETED, OVERWRITTEN, Kept, stamp_of

T0 = 1_700_000_000.0
NS = 1_000_000_000


def put(target: MemoryTarget, path: str, data: bytes, mtime: float, mode: int = 0o640) -> None:
    target.files[path] = Stored(data, int(mtime * NS), mode)


def change(target: MemoryTarget, path: str, when: float, data: bytes | None) -> None:
    """What the engine does for a change at `when`: keep, then overwrite or delete."""
    target.keep(path, stamp=stamp_of(when), coming="file" if data is not None else "absent")
    if data is None:
        target.delete(path)
    else:
        put(target, path, data, when)


# ----------------------------------------------------------------- times and paths


def test_parse_time_accepts_iso_offsets_stamps_and_durations_ago():
    assert listing.parse_time("2023-11-14T22:13:20Z") == T0
    assert listing.parse_time("2023-11-14T23:13:20+01:00") == T0
    assert listing.parse_time("2023-11-14T22:13:20") == T0          # no offset: UTC
    assert listing.parse_time(stamp_of(T0 + 0.25)) == T0 + 0.25
    assert listing.parse_time("2h", now=T0) == T0 - 7200
    assert listing.parse_time("90s", now=T0) == T0 - 90
    with pytest.raises(listing.UsageError, match="not a time: 'yesterday'"):
        listing.parse_time("yesterday")


@pytest.fixture
def cfg(tmp_path):
    ini = tmp_path / "m.ini"
    ini.write_text(f"""
[mirrord]
state_dir = {tmp_path / 'state'}
[source:up]
path = {tmp_path / 'src'}
targets = t
dest = site/up
[source:media]
path = {tmp_path / 'media'}
targets = t
dest = site
[target:t]
type = local
path = {tmp_path / 'dst'}
keep_deleted = 7d
[target:plain]
type = local
path = {tmp_path / 'plain'}
""")
    (tmp_path / "src").mkdir()
    return load(ini)


def test_paths_are_target_relative_or_mapped_from_a_source_tree(cfg, tmp_path):
    assert listing.target_path(cfg, "t", "./site/up/a/") == "site/up/a"
    assert listing.target_path(cfg, "t", "") == ""
    assert listing.target_path(cfg, "t", str(tmp_path / "src" / "2024")) == "site/up/2024"
    assert listing.target_path(cfg, "t", str(tmp_path / "src")) == "site/up"
    for bad, why in [("a/../../x", "'..'"), (".mirrord/trash", "own area"),
                     (str(tmp_path / "elsewhere"), "not inside the tree")]:
        with pytest.raises(listing.UsageError, match=why):
            listing.target_path(cfg, "t", bad)


def test_source_place_takes_the_source_with_the_longest_dest(cfg, tmp_path):
    assert listing.source_place(cfg, "t", "site/up/a/b.jpg") == ("up", str(tmp_path / "src"), "a/b.jpg")
    assert listing.source_place(cfg, "t", "site/logo.png") == ("media", str(tmp_path / "media"), "logo.png")
    assert listing.source_place(cfg, "t", "other/x") is None


# ----------------------------------------------------------------- choosing a version


def _versions() -> list[Kept]:
    return [Kept("a", stamp_of(T0 + i), OVERWRITTEN, i, 0, f"k{i}") for i in (10, 20, 30)]


@pytest.mark.parametrize("bounds, size", [
    ({}, 30), ({"at": T0 + 20}, 20), ({"before": T0 + 20}, 10), ({"at": T0 + 25}, 20),
    ({"at": T0 + 30, "since": T0 + 30}, 30), ({"since": T0 + 31}, None), ({"before": T0 + 10}, None),
])
def test_choose_takes_the_newest_version_within_the_bounds(bounds, size):
    chosen = listing.choose(_versions(), **bounds)
    assert (chosen["a"].size if chosen else None) == size


def _at(path: str, when: float) -> Kept:
    return Kept(path, stamp_of(T0 + when), DELETED, 1, 0, f"{path}@{when}")


@pytest.mark.parametrize("file_when, winner", [(5, ["a/b", "a/c/d"]), (50, ["a"])])
def test_a_file_and_versions_below_its_name_the_newest_change_wins(file_when, winner):
    """`a` a file at one time, a directory holding a/b and a/c/d at another: both cannot be
    put back. A restore wrote the older file and refused the newer directory's files, while
    its dry run promised both (a breaker); the newest change wins now, the rest is said."""
    left: list = []
    kept = [_at("a", file_when), _at("a/b", 20), _at("a/c/d", 10), _at("ab", 1)]
    chosen = listing.choose(sorted(kept, key=lambda k: k.path), dropped=left)
    assert sorted(chosen) == sorted(winner + ["ab"])
    assert {k.path for k, _newer in left} == {"a", "a/b", "a/c/d"} - set(winner)
    assert sorted(listing.choose(kept, one_kind=False)) == ["a", "a/b", "a/c/d", "ab"]


def test_nested_file_names_resolve_from_the_top():
    got = listing.one_kind_per_name({"a": _at("a", 1), "a/b": _at("a/b", 3),
                                     "a/b/c": _at("a/b/c", 2)})
    assert sorted(got) == ["a/b"]


# ----------------------------------------------------------------- onto the target


def test_restore_on_target_keeps_what_stands_there_first_and_is_idempotent():
    t = MemoryTarget("t")
    put(t, "a.txt", b"original", T0, 0o600)
    change(t, "a.txt", T0 + 10, b"ENCRYPTED")
    kept = listing.choose(t.trash_list("a.txt"))["a.txt"]

    dry = restore.restore_on_target(t, kept, keep_first=True, dry_run=True, now=T0 + 60)
    assert dry.action == "would restore" and t.read("a.txt") == b"ENCRYPTED"
    assert len(t.trash) == 1

    done = restore.restore_on_target(t, kept, keep_first=True, now=T0 + 60)
    assert done.action == "restored"
    assert t.read("a.txt") == b"original"
    assert t.files["a.txt"].mtime_ns == int(T0 * NS) and t.files["a.txt"].mode == 0o600
    undo = [k for k in t.trash_list() if k.stamp == stamp_of(T0 + 60)]
    assert [(k.why, t.trash[k.key][0]) for k in undo] == [(OVERWRITTEN, b"ENCRYPTED")]

    again = restore.restore_on_target(t, kept, keep_first=True, now=T0 + 90)
    assert again.action == "unchanged" and len(t.trash) == 2


def test_restore_on_target_without_keep_deleted_keeps_nothing():
    t = MemoryTarget("t")
    put(t, "a", b"v1", T0)
    change(t, "a", T0 + 5, b"v2")
    restore.restore_on_target(t, listing.choose(t.trash_list())["a"], keep_first=False)
    assert t.read("a") == b"v1" and len(t.trash) == 1


# ----------------------------------------------------------------- into the source


def _deleted(tmp_path) -> tuple[MemoryTarget, Kept, Path]:
    t = MemoryTarget("t")
    put(t, "d/e/f.bin", b"\x00kept bytes\xff", T0 - 100, 0o604)
    change(t, "d/e/f.bin", T0, None)
    return t, listing.choose(t.trash_list())["d/e/f.bin"], tmp_path / "src" / "d" / "e" / "f.bin"


def _src(dest: Path) -> tuple[str, str]:
    """(source root, path below it) of a _deleted() destination src/d/e/f.bin."""
    root = dest.parents[2]
    root.mkdir(exist_ok=True)
    return str(root), "d/e/f.bin"


def test_to_source_writes_bytes_mtime_and_mode_atomically(tmp_path):
    t, kept, dest = _deleted(tmp_path)
    assert restore.restore_to_source(t, kept, *_src(dest), dry_run=True).action == "would write"
    assert not dest.parent.exists()
    out = restore.restore_to_source(t, kept, *_src(dest))
    assert out.action == "written"
    st = dest.stat()
    assert dest.read_bytes() == b"\x00kept bytes\xff"
    assert st.st_mtime_ns == int((T0 - 100) * NS) and st.st_mode & 0o777 == 0o604
    assert os.listdir(dest.parent) == ["f.bin"]       # no temp file left beside it
    assert restore.restore_to_source(t, kept, *_src(dest)).action == "unchanged"


def test_to_source_refuses_a_newer_file_unless_forced(tmp_path):
    t, kept, dest = _deleted(tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"new work")
    os.utime(dest, ns=(int((T0 + 1) * NS),) * 2)        # modified after the delete
    out = restore.restore_to_source(t, kept, *_src(dest))
    assert out.action == "refused" and "--force" in out.detail and not out.ok
    assert dest.read_bytes() == b"new work"
    assert restore.restore_to_source(t, kept, *_src(dest), force=True).action == "written"
    assert dest.read_bytes() == b"\x00kept bytes\xff"


def test_to_source_overwrites_a_file_older_than_the_change(tmp_path):
    """Ransomware's case: the damaged file was written before the change was seen (its
    mtime and ctime both before the stamp)."""
    t, kept, dest = _deleted(tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"damaged")
    kept = dataclasses.replace(kept, stamp=stamp_of(time.time() + 0.01))   # seen just after
    assert restore.restore_to_source(t, kept, *_src(dest)).action == "written"
    assert dest.read_bytes() == b"\x00kept bytes\xff"


def test_to_source_refuses_a_newer_upload_that_kept_an_old_mtime(tmp_path):
    """A file put there after the change by a copy that keeps mtimes (rsync -t, cp -p,
    tar -x) has an mtime before the change but a ctime after it: newer work."""
    t, kept, dest = _deleted(tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"a newer upload")
    os.utime(dest, ns=(int((T0 - 1) * NS),) * 2)          # mtime before the change (T0)
    out = restore.restore_to_source(t, kept, *_src(dest))
    assert out.action == "refused" and dest.read_bytes() == b"a newer upload"
    assert restore.restore_to_source(t, kept, *_src(dest), force=True).action == "written"



def test_to_source_restores_other_bytes_under_the_kept_size_and_mtime(tmp_path):
    """Ransomware that keeps each file's length and puts its mtime back: the source file
    has the kept version's size and mtime but other bytes. It is not "already this
    version" (that skipped it: a review, helper-155); it is written, and then it is."""
    t, kept, dest = _deleted(tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"\x00ENCRYPTED!\xff")                 # the kept size, 13 bytes
    os.utime(dest, ns=(kept.mtime_ns, kept.mtime_ns))
    kept = dataclasses.replace(kept, stamp=stamp_of(time.time() + 0.01))   # seen just after
    assert restore.restore_to_source(t, kept, *_src(dest), dry_run=True).action == "would write"
    assert restore.restore_to_source(t, kept, *_src(dest)).action == "written"
    assert dest.read_bytes() == b"\x00kept bytes\xff"
    assert restore.restore_to_source(t, kept, *_src(dest)).action == "unchanged"


def test_restore_on_target_restores_other_bytes_under_the_kept_size_and_mtime():
    """The target's side of the same: the file there has the kept size and mtime, other
    bytes; it is restored (what stands there kept first), then unchanged."""
    t = MemoryTarget("t")
    put(t, "a.txt", b"original!", T0, 0o600)
    change(t, "a.txt", T0 + 10, b"ENCRYPTED")
    t.files["a.txt"] = Stored(b"ENCRYPTED", int(T0 * NS), 0o600)   # the mtime put back
    kept = listing.choose(t.trash_list("a.txt"))["a.txt"]
    done = restore.restore_on_target(t, kept, keep_first=True, now=T0 + 60)
    assert done.action == "restored" and t.read("a.txt") == b"original!"
    again = restore.restore_on_target(t, kept, keep_first=True, now=T0 + 90)
    assert again.action == "unchanged"

def test_to_source_never_replaces_a_directory(tmp_path):
    t, kept, dest = _deleted(tmp_path)
    dest.mkdir(parents=True)
    out = restore.restore_to_source(t, kept, *_src(dest), force=True)
    assert out.action == "refused" and dest.is_dir()


def test_to_source_never_follows_a_symlink_planted_in_the_tree(tmp_path):
    """The upload tree is written by the web app's users; a restore runs as root. A symlink
    standing for a parent directory, or at the file itself, must not lead the write out."""
    t, kept, dest = _deleted(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    root, rel = _src(dest)
    (dest.parents[1]).mkdir()
    os.symlink(outside, dest.parent)                      # src/d/e -> outside
    out = restore.restore_to_source(t, kept, root, rel, force=True)
    assert out.action == "refused" and "symlink" in out.detail
    assert os.listdir(outside) == []
    os.unlink(dest.parent)
    dest.parent.mkdir()
    os.symlink(outside / "f.bin", dest)                   # the file itself is a symlink
    assert restore.restore_to_source(t, kept, root, rel).action == "refused"
    out = restore.restore_to_source(t, kept, root, rel, force=True)
    assert out.action == "written" and not dest.is_symlink()   # the link is replaced, not followed
    assert dest.read_bytes() == b"\x00kept bytes\xff" and os.listdir(outside) == []


def test_to_source_refuses_a_file_standing_for_a_parent(tmp_path):
    t, kept, dest = _deleted(tmp_path)
    root, rel = _src(dest)
    (dest.parents[1]).mkdir()
    dest.parent.write_bytes(b"a file where a directory should be")
    out = restore.restore_to_source(t, kept, root, rel)
    assert out.action == "refused" and dest.parent.read_bytes().startswith(b"a file")


# ----------------------------------------------------------------- the commands


@pytest.fixture
def fake(monkeypatch, cfg):
    """The configured target `t` is one MemoryTarget (the factory is the one seam)."""
    t = MemoryTarget("t")
    monkeypatch.setattr(trash_cli.target_registry, "create", lambda tcfg: t)
    monkeypatch.setenv("MIRRORD_CONFIG", str(cfg.path))
    return t


def test_trash_json_lists_newest_first_per_path_with_totals(fake, capsys):
    put(fake, "site/up/a", b"1", T0)
    change(fake, "site/up/a", T0 + 1, b"22")
    change(fake, "site/up/a", T0 + 2, None)
    put(fake, "site/up/b", b"bbb", T0)
    change(fake, "site/up/b", T0 + 3, None)
    assert cli_main.main(["trash", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    rows = [(e["path"], e["why"], e["size"]) for e in doc["targets"]["t"]["entries"]]
    assert rows == [("site/up/a", DELETED, 2), ("site/up/a", OVERWRITTEN, 1),
                    ("site/up/b", DELETED, 3)]
    assert doc["count"] == 3 and doc["bytes"] == 6
    assert doc["targets"]["t"]["entries"][0]["changed"] == listing.iso(T0 + 2)
    assert "targets that keep deleted files: t" in captured.err   # `plain` does not keep


def test_undelete_restores_and_reports_exit_codes(fake, capsys, tmp_path):
    put(fake, "site/up/x/1", b"one", T0)
    put(fake, "site/up/x/2", b"two", T0)
    change(fake, "site/up/x/1", T0 + 1, None)
    change(fake, "site/up/x/2", T0 + 1, None)
    assert cli_main.main(["undelete", "--dry-run", "site/up/x"]) == 0
    assert "would restore: t:site/up/x/1" in capsys.readouterr().out and not fake.files
    assert cli_main.main(["undelete", str(tmp_path / "src" / "x")]) == 0
    assert fake.read("site/up/x/1") == b"one" and fake.read("site/up/x/2") == b"two"
    assert cli_main.main(["undelete", "site/up/nothing"]) == 1
    assert "nothing kept at or below 'site/up/nothing'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["undelete", "--at", "soon", "a"], "not a time: 'soon'"),
    (["undelete", "--target", "nope", "a"], "there is no [target:nope] section"),
    (["trash", "../x"], "'..' is not allowed"),
    (["undelete", "--force", "a"], "--force only applies with --to-source"),
])
def test_usage_errors_are_one_line_and_exit_2(fake, capsys, argv, message):
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_undelete_to_source_refusal_exits_1(fake, capsys, tmp_path):
    put(fake, "site/up/p", b"old", T0)
    change(fake, "site/up/p", T0 + 1, None)
    (tmp_path / "src" / "p").write_bytes(b"newer work")       # mtime now: after the change
    assert cli_main.main(["undelete", "--to-source", "site/up/p"]) == 1
    assert "refused: " + str(tmp_path / "src" / "p") in capsys.readouterr().out
    assert (tmp_path / "src" / "p").read_bytes() == b"newer work"
    assert cli_main.main(["undelete", "--to-source", "--force", "site/up/p"]) == 0
    assert (tmp_path / "src" / "p").read_bytes() == b"old"
    assert "site/up/p" not in fake.files   # the daemon ships it on, not the command


def test_a_versioned_s3_stamp_has_a_second_of_slack(tmp_path):
    """S3 versioning stamps a version with its successor's LastModified, whole seconds on
    SeaweedFS: a file damaged within that second is not newer work."""
    t, kept, dest = _deleted(tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"damaged")
    st = os.stat(dest)
    damaged = max(st.st_mtime_ns, st.st_ctime_ns) / NS
    second = stamp_of(damaged - 0.5)       # LastModified rounded down into the second before
    versioned = dataclasses.replace(kept, stamp=second, version="v1")
    assert restore.refusal(str(dest), versioned, force=False) is None
    assert restore.refusal(str(dest), dataclasses.replace(kept, stamp=second),
                           force=False) is not None
    earlier = dataclasses.replace(versioned, stamp=stamp_of(damaged - 2))
    assert restore.refusal(str(dest), earlier, force=False) is not None


def test_trash_text_names_each_target_and_the_total(fake, capsys):
    put(fake, "site/up/a", b"12345", T0)
    change(fake, "site/up/a", T0 + 1, None)
    assert cli_main.main(["trash", "--target", "t", "site/up"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "target t (rename): 1 kept versions, 5 B"
    assert out[2].split() == [listing.iso(T0 + 1), "5", "B", "deleted", "site/up/a"]
    assert out[-1] == "total: 1 kept versions, 5 B"


def test_no_keeping_target_is_a_usage_error(fake, capsys, cfg):
    ini = cfg.path.read_text().replace("keep_deleted = 7d\n", "")
    cfg.path.write_text(ini)
    assert cli_main.main(["trash"]) == 2
    assert "no [target:*] section that a source feeds has keep_deleted on" in capsys.readouterr().err


def test_a_keeping_target_no_source_feeds_is_left_out_unless_named(fake, capsys, cfg):
    """Status calls it unused; its root may hold no mirror at all, and every undelete that
    succeeded on the targets in use then exited 1 for it (a breaker)."""
    ini = cfg.path.read_text().replace("path = " + str(cfg.path.parent / "plain") + "\n",
                                       "path = " + str(cfg.path.parent / "plain") + "\n"
                                       "keep_deleted = 7d\n")
    cfg.path.write_text(ini)
    assert trash_cli.selected(load(cfg.path), None) == ["t"]
    assert trash_cli.selected(load(cfg.path), "plain") == ["plain"]


def test_to_source_never_writes_outside_the_source_tree(fake, capsys, tmp_path):
    """A name read back from a target's trash (an S3 key can hold anything) that climbs out
    with '..' is refused, not joined onto the source root."""
    evil = Kept("site/up/../../../escaped", stamp_of(T0), DELETED, 1, int(T0 * NS),
                ".mirrord/trash/x/y")
    fake.trash_list = lambda prefix="", since=None: iter([evil])
    put(fake, "site/up/other", b"1", T0)   # a mirror's root (an empty one is refused first)
    assert cli_main.main(["undelete", "--to-source", "--force", "site"]) == 1
    assert "unsafe path" in capsys.readouterr().out
    assert not (tmp_path.parent.parent / "escaped").exists()
