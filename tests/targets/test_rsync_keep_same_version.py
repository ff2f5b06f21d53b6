"""keep_deleted on the rsync target skips a file that already is the version being sent
(issue 17), against a real sshd: same size and same mtime (ns; whole seconds on a receiver
that keeps no more) means the put destroys nothing, so nothing goes to the trash.

A re-send of one version (a retry after a lost ack, a reconcile re-queue, a catch-up
with a new event time) used to keep a copy of the very version being sent. Any other
difference keeps as before. The sshd fixture's "remote" is this machine: the root and
its trash are read directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirrord.errors import PermanentError
from mirrord.targets.rsync import keep_script as kscript
from mirrord.targets.rsync import trash as rtrash
from mirrord.trash.model import TRASH
from tests.targets.test_rsync_keep_in_run import STAMP, WHEN, kept_files, ship, source
from tests.targets.test_rsync_trash import count_runs, root, t  # noqa: F401 - t: fixture

NS = 1_795_000_000_123_456_789   # the source's mtime
LATER = WHEN + 86400              # another event time: another stamp


def at(path: Path, data: bytes, ns: int = NS) -> Path:
    """`path` holding `data` with mtime `ns` (its parents made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(ns, ns))
    return path


def test_the_same_version_re_sent_keeps_nothing(t, tmp_path, monkeypatch):
    """One rsync run: the version already there, a changed file and a new one. Only the
    changed one is kept, still without a keep round trip; the trash holds no copy of what
    is being sent."""
    src = source(tmp_path, {})
    for name in ("same.txt", "changed.txt", "new.txt"):
        at(src / "d" / name, b"version two")
    at(root(t) / "d/same.txt", b"version two")
    at(root(t) / "d/changed.txt", b"version one", NS - 10**9)
    scripts = count_runs(t, monkeypatch)
    assert ship(t, src, ["d/same.txt", "d/changed.txt", "d/new.txt"]) == [None] * 3
    assert scripts == []
    assert kept_files(t) == {f"{STAMP}.overwritten/d/changed.txt": b"version one"}
    for name in ("same.txt", "changed.txt", "new.txt"):
        st = os.stat(root(t) / "d" / name)
        assert (root(t) / "d" / name).read_bytes() == b"version two" and st.st_mtime_ns == NS


def test_a_re_queue_under_a_new_stamp_keeps_only_the_version_it_replaced(t, tmp_path):
    """The first send keeps version one; the same change sent again (ack lost, reconcile
    re-queue: a new event time) finds version two there and keeps nothing more."""
    at(root(t) / "a.txt", b"version one", NS - 10**9)
    src = source(tmp_path, {})
    at(src / "a.txt", b"version two")
    assert ship(t, src, ["a.txt"]) == [None]
    assert ship(t, src, ["a.txt"], {"a.txt": LATER}) == [None]
    assert kept_files(t) == {f"{STAMP}.overwritten/a.txt": b"version one"}


def test_the_first_send_of_a_new_path_keeps_nothing(t, tmp_path):
    src = source(tmp_path, {})
    at(src / "e/f/new.txt", b"new")
    assert ship(t, src, ["e/f/new.txt"]) == [None]
    assert not (root(t) / TRASH).exists()
    assert (root(t) / "e/f/new.txt").read_bytes() == b"new"


@pytest.mark.parametrize("there, there_ns", [
    (b"same size!", NS + 1),          # 1 ns off: another version
    (b"same size!", NS - 10**9),      # same fraction, another second
    (b"longer than it", NS),          # same mtime, another size
    (b"", NS),
], ids=["mtime-1ns", "mtime-1s", "size", "empty"])
def test_another_version_is_kept(t, tmp_path, there, there_ns):
    at(root(t) / "x.bin", there, there_ns)
    src = source(tmp_path, {})
    at(src / "x.bin", b"0123456789")
    assert ship(t, src, ["x.bin"]) == [None]
    assert kept_files(t) == {f"{STAMP}.overwritten/x.bin": there}
    assert os.stat(root(t) / f"{TRASH}/{STAMP}.overwritten/x.bin").st_mtime_ns == there_ns
    assert (root(t) / "x.bin").read_bytes() == b"0123456789"


def test_a_directory_where_the_file_goes_is_kept_as_before(t, tmp_path):
    """A directory is never "this version" even with the size (its st_size) and mtime of
    the file being sent: it is kept whole as dir-removed, as before."""
    d = at(root(t) / "p/inner.txt", b"inside").parent
    size = os.stat(d).st_size
    os.utime(d, ns=(NS, NS))
    src = source(tmp_path, {})
    at(src / "p", b"x" * size)
    assert ship(t, src, ["p"]) == [None]
    assert kept_files(t) == {f"{STAMP}.dir-removed/p/inner.txt": b"inside"}
    assert (root(t) / "p").read_bytes() == b"x" * size


def test_a_whole_second_mtime_compares(t, tmp_path):
    """find prints %T@ of a whole second as "SEC.0000000000": still the same version."""
    whole = 1_795_000_000 * 10**9
    at(root(t) / "w.txt", b"whole", whole)
    src = source(tmp_path, {})
    at(src / "w.txt", b"whole", whole)
    assert ship(t, src, ["w.txt"]) == [None]
    assert not (root(t) / TRASH).exists()


def test_a_receiver_keeping_whole_seconds_compares_whole_seconds(t, tmp_path):
    """rsync < 3.1 (mtime_precision 1.0) stored the version cut to the second: that is
    the version being sent there; another second is not."""
    t.features = t._features(1.0)
    at(root(t) / "s.txt", b"same", NS - NS % 10**9)
    at(root(t) / "o.txt", b"othr", NS - NS % 10**9 - 10**9)
    src = source(tmp_path, {})
    at(src / "s.txt", b"same")
    at(src / "o.txt", b"new!")
    assert ship(t, src, ["s.txt", "o.txt"]) == [None, None]
    assert kept_files(t) == {f"{STAMP}.overwritten/o.txt": b"othr"}


def test_kill_9_between_keep_and_send_keeps_nothing_twice(t, tmp_path):
    """The keep ran (version one linked into the trash), the send did not; the restart's
    catch-up sends under a new stamp: the link count says it is kept already."""
    at(root(t) / "k.txt", b"version one", NS - 10**9)
    assert t.keep("k.txt", stamp=STAMP, coming="file") == len(b"version one")
    src = source(tmp_path, {})
    at(src / "k.txt", b"version two")
    assert ship(t, src, ["k.txt"], {"k.txt": LATER}) == [None]
    assert ship(t, src, ["k.txt"], {"k.txt": LATER + 1}) == [None]
    assert kept_files(t) == {f"{STAMP}.overwritten/k.txt": b"version one"}
    assert (root(t) / "k.txt").read_bytes() == b"version two"


@pytest.mark.parametrize("pad", [0, 200], ids=["command-line", "stdin"])
def test_a_keep_batch_with_versions_skips_the_same_version_both_ways(t, pad):
    """keep_batch (the round trip a run too long for the wrapper keeps in first): a record
    carrying the version skips it on the command line and through xargs alike."""
    name = "n" * pad
    at(root(t) / f"{name}same", b"12345")
    at(root(t) / f"{name}other", b"12345")
    requests = [(f"{name}same", STAMP, "file", (5, NS)), (f"{name}other", STAMP, "file", (5, NS + 1)),
                (f"{name}plain", STAMP, "file")]
    requests += [(f"{name}new{i}", STAMP, "file", (1, NS)) for i in range(150)]
    words = [kscript.q(r) for r in kscript.keep_records(requests, [None] * len(requests))]
    assert (sum(len(w) + 1 for w in words) > kscript.ARGS_LIMIT) == bool(pad)
    at(root(t) / f"{name}plain", b"12345")   # no version: kept as before
    got = rtrash.RsyncTrash(t).keep_batch(requests)
    assert got[:3] == [0, 5, 5] and got[3:] == [0] * 150
    assert kept_files(t) == {f"{STAMP}.overwritten/{name}other": b"12345",
                             f"{STAMP}.overwritten/{name}plain": b"12345"}


def test_a_record_carries_the_version_as_size_and_ns():
    """'file' with (size, ns) becomes SIZE:NS; a pre-1970 mtime is sent without it (find's
    %T@ for it is not relied on: kept as before); a malformed version fails alone."""
    out: list = [None] * 5
    records = kscript.keep_records([("a", STAMP, "file", (7, NS)), ("b", STAMP, "dir", (7, NS)),
                                   ("c", STAMP, "file", (7, -5)), ("d", STAMP, "file", (7, 1.5)),
                                   ("e", STAMP, "file", (7,))],
                                  out)
    assert [r.split(b" ")[1] for r in records] == [b"7:%d" % NS, b"dir", b"file"]
    assert out[:3] == [None] * 3 and all(
        isinstance(e, PermanentError) and "version" in str(e) for e in out[3:])
