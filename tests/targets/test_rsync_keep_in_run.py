"""keep_deleted inside the rsync run's own ssh session (mirrord.targets.rsync.inrun, issue 17),
against a real sshd: the keeper marks plain puts (keeper.prepare), and the rsync target keeps
what they overwrite, and their parents, through --rsync-path before its receiver starts.

A separate keep round trip would be a remote command (conn.run, counted here); the keeps
are proven to have run by what they left in the trash, so "no round trip" cannot pass by
keeping nothing. The sshd fixture's "remote" is this machine: the root is read directly.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from mirrord.errors import PermanentError, RetryableError
from mirrord.targets.model import SyncItem
from mirrord.targets.rsync import transfer as rtransfer
from mirrord.targets.rsync import inrun
from mirrord.targets.rsync import keep_script as kscript
from mirrord.targets.rsync.target import RsyncTarget
from mirrord.trash import keeper
from mirrord.trash.model import TRASH, stamp_of, trash_rel
from tests.targets.test_rsync_trash import MTIME_NS, count_runs, root, t, write  # noqa: F401

WHEN = 1_795_000_000.25
STAMP = stamp_of(WHEN)


def source(tmp_path: Path, files: dict[str, bytes]) -> Path:
    src = tmp_path / "src"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    src.mkdir(exist_ok=True)
    return src


def ship(t, src: Path, paths: list[str], whens: dict[str, float] | None = None):
    """What the Shipper does with keep_deleted on: keeper.prepare, then sync the items whose
    keep did not fail (event time WHEN, or whens[path]). Returns one error (or None) per path."""
    items = []
    for p in paths:
        st = os.lstat(src / p) if os.path.lexists(src / p) else None
        items.append(SyncItem(p, "file", size=st.st_size if st else 0,
                              mtime=st.st_mtime if st else 0.0, mtime_ns=st.st_mtime_ns if st else 0,
                              source_root=str(src), source_rel=p, when=(whens or {}).get(p, WHEN)))
    items, errors = keeper.prepare(t, items)
    go = [i for i, e in enumerate(errors) if e is None]
    for i, res in zip(go, t.sync([items[i] for i in go])):
        errors[i] = res.error
    return errors


def rsync_argvs(monkeypatch) -> list[list]:
    """The argv of every rsync run from now on."""
    seen: list[list] = []
    real = subprocess.run

    def run(argv, *a, **kw):
        if argv and argv[0] == "rsync":
            seen.append(list(argv))
        return real(argv, *a, **kw)

    monkeypatch.setattr(rtransfer.subprocess, "run", run)
    return seen


def kept_files(t) -> dict[str, bytes]:
    base = root(t) / TRASH
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


@pytest.mark.parametrize("rsync_path", ["rsync", "/usr/bin/rsync"])
def test_a_burst_of_new_files_makes_no_keep_round_trip(t, tmp_path, monkeypatch, request,
                                                      rsync_path):
    if rsync_path != "rsync":   # the target's configured rsync_path still starts the receiver
        t = RsyncTarget(t.name, dataclasses.replace(t.opts, rsync_path=rsync_path))
        t.open()
        request.addfinalizer(t.close)
    write(t, "d/old.txt", b"old bytes")
    files = {f"d/e{i % 7}/new{i}.bin": b"%d" % i for i in range(300)}
    src = source(tmp_path, files | {"d/old.txt": b"new bytes, longer"})
    scripts, argvs = count_runs(t, monkeypatch), rsync_argvs(monkeypatch)
    assert ship(t, src, list(files) + ["d/old.txt"]) == [None] * 301
    assert scripts == [], "no remote command besides the rsync run"
    assert len(argvs) == 1
    wrap = [a for a in argvs[0] if isinstance(a, bytes) and a.startswith(b"--rsync-path=")]
    assert len(wrap) == 1 and wrap[0].endswith(b" && " + rsync_path.encode())
    assert kept_files(t) == {trash_rel(STAMP, "overwritten", "d/old.txt")[len(TRASH) + 1:]: b"old bytes"}
    kept = root(t) / trash_rel(STAMP, "overwritten", "d/old.txt")
    assert os.stat(kept).st_mtime_ns == MTIME_NS
    assert (root(t) / "d/old.txt").read_bytes() == b"new bytes, longer"
    assert all((root(t) / p).read_bytes() == data for p, data in files.items())


def test_an_overwrite_is_kept_once_with_its_bytes_and_mtime_also_on_a_retry(t, tmp_path):
    write(t, "a.txt", b"first")
    src = source(tmp_path, {"a.txt": b"second"})
    # a kill -9 after the keep, before the receiver wrote: the keep already ran once
    assert t.keep("a.txt", stamp=STAMP, coming="file") == 5
    assert ship(t, src, ["a.txt"]) == [None]
    assert ship(t, src, ["a.txt"]) == [None]   # the row retried once more: same stamp
    assert kept_files(t) == {f"{STAMP}.overwritten/a.txt": b"first"}
    assert os.stat(root(t) / trash_rel(STAMP, "overwritten", "a.txt")).st_mtime_ns == MTIME_NS
    assert (root(t) / "a.txt").read_bytes() == b"second"


def test_a_file_standing_where_a_parent_goes_is_kept(t, tmp_path, monkeypatch):
    """`rm d; mkdir d; echo > d/z`: rsync --mkpath removes the file d on its way."""
    write(t, "d", b"the file d")
    src = source(tmp_path, {"d/z": b"z"})
    scripts = count_runs(t, monkeypatch)
    assert ship(t, src, ["d/z"]) == [None]
    assert scripts == []
    assert kept_files(t) == {f"{STAMP}.deleted/d": b"the file d"}
    assert (root(t) / "d/z").read_bytes() == b"z"


def test_a_failed_keep_fails_the_run_and_overwrites_nothing(t, tmp_path):
    write(t, "over.txt", b"old")
    os.makedirs(root(t) / ".mirrord", exist_ok=True)
    (root(t) / TRASH).write_bytes(b"a file where the trash goes: mkdir -p fails")
    src = source(tmp_path, {"over.txt": b"new!", "fresh.txt": b"fresh"})
    errors = ship(t, src, ["over.txt", "fresh.txt"])
    assert isinstance(errors[0], RetryableError) and "cannot keep 'over.txt'" in str(errors[0])
    assert "File exists" in str(errors[0])
    assert isinstance(errors[1], RetryableError) and "not sent: keeping 'over.txt'" in str(errors[1])
    assert all(str(t.opts.ssh_key) not in str(e) for e in errors)   # never a credential
    assert (root(t) / "over.txt").read_bytes() == b"old"
    assert not (root(t) / "fresh.txt").exists(), "the receiver never started"
    (root(t) / TRASH).unlink()   # the retry, once the trash can be made, keeps and sends
    assert ship(t, src, ["over.txt", "fresh.txt"]) == [None, None]
    assert kept_files(t) == {f"{STAMP}.overwritten/over.txt": b"old"}
    assert (root(t) / "fresh.txt").read_bytes() == b"fresh"


def test_a_permanent_keep_failure_is_permanent(t, tmp_path, monkeypatch):
    """classify_stderr as for keep_batch: 'Permission denied' is not fixed by retrying.
    The fixture's sshd runs as root, whom a 0555 trash does not stop, so a stand-in body
    answers what ln would (same record format and exit status as KEEP_BODY)."""
    write(t, "over.txt", b"old")
    src = source(tmp_path, {"over.txt": b"new!"})
    body = (b'f=\nfor r; do i=${r%% *}; p=${r##* }\n'
            b'  if [ -e "$p" ]; then printf "%s E %s\\0" "$i" "ln: Permission denied"; f=1; fi\n'
            b'done\n[ -z "$f" ]')
    monkeypatch.setattr("mirrord.targets.rsync.inrun.KEEP_BODY", body)
    errors = ship(t, src, ["over.txt"])
    assert isinstance(errors[0], PermanentError) and "cannot keep 'over.txt'" in str(errors[0])
    assert "Permission denied" in str(errors[0])
    assert (root(t) / "over.txt").read_bytes() == b"old"


@pytest.mark.parametrize("count, in_run", [(680, True), (1000, False)], ids=["fits", "too-long"])
def test_records_past_the_command_line_budget_are_kept_in_one_round_trip_first(
        t, tmp_path, monkeypatch, count, in_run):
    """680 paths of 75 bytes, each record with the version sent (SIZE:SHA256), make a
    wrapper just below WRAP_LIMIT (it runs: the real login shell takes it); 1,000 pass it,
    and one keep_batch round trip keeps them first."""
    long = "n" * 71
    files = {f"d/{long}{i}": b"%d" % i for i in range(count)}
    assert (sum(len(p) + 85 for p in files) > inrun.WRAP_LIMIT) == (not in_run)
    write(t, f"d/{long}0", b"old zero")
    src = source(tmp_path, files)
    scripts, argvs = count_runs(t, monkeypatch), rsync_argvs(monkeypatch)
    assert ship(t, src, list(files)) == [None] * count
    assert len(scripts) == (0 if in_run else 1)
    wrapped = [a for a in argvs[0] if isinstance(a, bytes) and a.startswith(b"--rsync-path=")]
    # the receiver always starts behind the root's guard; the keeps ride in it when they fit
    assert len(argvs) == 1 and len(wrapped) == 1 and b"root is not the directory" in wrapped[0]
    assert (inrun.KEEP_BODY in wrapped[0]) == in_run
    assert not in_run or len(wrapped[0]) > 100 << 10   # near the limit, not far below it
    assert kept_files(t) == {f"{STAMP}.overwritten/d/{long}0": b"old zero"}
    assert (root(t) / f"d/{long}0").read_bytes() == b"0"


def test_a_marked_put_whose_source_vanished_is_kept_before_its_delete(t, tmp_path):
    write(t, "gone.txt", b"was here")
    src = source(tmp_path, {})
    assert ship(t, src, ["gone.txt"]) == [None]
    assert not (root(t) / "gone.txt").exists()
    assert kept_files(t) == {f"{STAMP}.overwritten/gone.txt": b"was here"}


def test_each_item_is_kept_under_its_own_stamp(t, tmp_path):
    """Stamps ride in the wrapper's records as what changed since the previous record's
    ("=" or "+" and the microseconds, trash.keep_records): no change of stamp may be lost."""
    whens = {"x/a": WHEN, "x/b": WHEN + 3600, "x/c": WHEN + 3600, "x/d": WHEN + 3600.5,
             "x/e": WHEN}
    for p in whens:
        write(t, p, b"old " + p.encode())
    src = source(tmp_path, {p: b"new" for p in whens})
    words = [r.split(b" ")[2] for r in kscript.keep_records(
        [(p, stamp_of(w), "file") for p, w in whens.items()], [None] * 5, compact=True)]
    assert words[1:4] == [stamp_of(WHEN + 3600).encode(), b"=", b"+" + stamp_of(WHEN + 3600.5)[-7:].encode()]
    assert ship(t, src, list(whens), whens) == [None] * 5
    assert kept_files(t) == {f"{stamp_of(w)}.overwritten/{p}": b"old " + p.encode()
                             for p, w in whens.items()}
