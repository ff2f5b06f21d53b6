"""keep_deleted on the rsync target skips a file that already is the version being sent
(issue 17), against a real sshd: same size and same mtime (ns; whole seconds on a receiver
that keeps no more) means the put destroys nothing, so nothing goes to the trash.

A re-send of one version (a retry after a lost ack, a reconcile re-queue, a catch-up
with a new event time) used to keep a copy of the very version being sent. Any other
difference keeps as before, other bytes under the same size and mtime too: the record
carries the sha256 of what is sent, and the host's file is hashed (sha256sum) when its
size and mtime match (a rewrite in place with its length and mtime put back, e.g.
ransomware, was overwritten unkept: the only good copy lost). The sshd fixture's "remote" is this machine: the root and
its trash are read directly.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mirrord.errors import PermanentError
from mirrord.trash.model import OVERWRITTEN
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
    carrying the version skips the very bytes, whatever their mtime (a touch, helper-161),
    and keeps other bytes of the same size, on the command line and through xargs alike."""
    name = "n" * pad
    at(root(t) / f"{name}same", b"12345")
    at(root(t) / f"{name}touched", b"12345")
    at(root(t) / f"{name}other", b"12345")
    requests = [(f"{name}same", STAMP, "file", (5, NS, sha(b"12345"))),
                (f"{name}touched", STAMP, "file", (5, NS + 10**9 + 1, sha(b"12345"))),
                (f"{name}other", STAMP, "file", (5, NS + 1, sha(b"54321"))),
                (f"{name}plain", STAMP, "file")]
    requests += [(f"{name}new{i}", STAMP, "file", (1, NS, sha(b"x"))) for i in range(150)]
    words = [kscript.q(r) for r in kscript.keep_records(requests, [None] * len(requests))]
    assert (sum(len(w) + 1 for w in words) > kscript.ARGS_LIMIT) == bool(pad)
    at(root(t) / f"{name}plain", b"12345")   # no version: kept as before
    got = rtrash.RsyncTrash(t).keep_batch(requests)
    assert got[:4] == [0, 0, 5, 5] and got[4:] == [0] * 150
    assert kept_files(t) == {f"{STAMP}.overwritten/{name}other": b"12345",
                             f"{STAMP}.overwritten/{name}plain": b"12345"}


def test_a_record_carries_the_version_as_size_and_sha256():
    """'file' with (size, ns, sha256) becomes SIZE:SHA256, the mtime left out (the same
    bytes under another mtime are the same bytes: a touch, helper-161), a pre-1970 one
    too; an empty file's is 0: (no bytes to differ); without its sha256 a non-empty
    file's version is not sent (size and mtime are not the same bytes: kept); a malformed
    version fails alone."""
    h = sha(b"seven b")
    requests = [("a", STAMP, "file", (7, NS, h)), ("b", STAMP, "dir", (7, NS, h)),
                ("c", STAMP, "file", (7, -5, h)), ("z", STAMP, "file", (0, NS, "")),
                ("n", STAMP, "file", (7, NS)), ("m", STAMP, "file", (7, NS, "")),
                ("d", STAMP, "file", (7, 1.5, h)), ("e", STAMP, "file", (7,)),
                ("f", STAMP, "file", (7, NS, h.upper())), ("g", STAMP, "file", (7, NS, h[:-1]))]
    out: list = [None] * len(requests)
    records = kscript.keep_records(requests, out)
    assert [r.split(b" ")[1] for r in records] == [
        b"7:%s" % h.encode(), b"dir", b"7:%s" % h.encode(), b"0:", b"file", b"file"]
    assert out[:6] == [None] * 6 and all(
        isinstance(e, PermanentError) and "version" in str(e) for e in out[6:])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_other_bytes_under_the_same_size_and_mtime_are_kept(t, tmp_path, monkeypatch):
    """A file rewritten in place with its length and its mtime put back (ransomware keeping
    lengths, a script restoring timestamps; reconcile --checksum re-sends it): the put
    overwrites other bytes, so they are kept as 'overwritten', in the run's own session
    (no keep round trip); trash_list shows them and trash_fetch returns them. Size and
    mtime alone kept nothing: the only good copy was lost."""
    at(root(t) / "d/doc.txt", b"the good bytes")
    src = source(tmp_path, {})
    at(src / "d/doc.txt", b"ENCRYPTED!!!!!")   # same length, the mtime put back (NS)
    scripts = count_runs(t, monkeypatch)
    assert ship(t, src, ["d/doc.txt"]) == [None]
    assert scripts == []
    assert (root(t) / "d/doc.txt").read_bytes() == b"ENCRYPTED!!!!!"
    [k] = t.trash_list()
    assert (k.path, k.stamp, k.why, k.size, k.mtime_ns) == ("d/doc.txt", STAMP, OVERWRITTEN, 14, NS)
    out = tmp_path / "fetched"
    t.trash_fetch(k, str(out))
    assert out.read_bytes() == b"the good bytes"


def test_the_very_bytes_re_sent_keep_nothing_and_other_bytes_are_kept_in_one_run(t, tmp_path):
    """One run: the very bytes (a retry) keep nothing, under another mtime too (a touch
    seen live as a write kept a duplicate, helper-161; rsync sets the new mtime); same
    size but one byte changed keeps it, under the same mtime or another; an empty file
    (no bytes to compare) keeps nothing, whatever its mtime."""
    src = source(tmp_path, {})
    older = NS - 3 * 10**9 - 5
    shapes = (("same", b"abcdef", NS, b"abcdef"), ("flip", b"abcdef", NS, b"abcdeF"),
              ("empty", b"", NS, b""), ("touched", b"abcdef", older, b"abcdef"),
              ("flipped", b"abcdef", older, b"Abcdef"), ("empty-touched", b"", older, b""))
    for name, there, there_ns, coming in shapes:
        at(root(t) / name, there, there_ns)
        at(src / name, coming)
    assert ship(t, src, [s[0] for s in shapes]) == [None] * len(shapes)
    assert kept_files(t) == {f"{STAMP}.overwritten/flip": b"abcdef",
                             f"{STAMP}.overwritten/flipped": b"abcdef"}
    for name, _, _, coming in shapes:
        here = root(t) / name
        assert (here.read_bytes(), os.stat(here).st_mtime_ns) == (coming, NS), name


ODD = ["new\nline.txt", "-e", "--rsh=x", "sp ace/-n", "\n", os.fsdecode(b"caf\xe9 \n-x")]


@pytest.mark.parametrize("how", ["run", "batch-args", "batch-stdin"])
def test_odd_names_compare_their_bytes(t, tmp_path, how):
    """Names with a newline, leading dashes, non-UTF-8 bytes: each same-size same-mtime
    name with other bytes is kept, each with the very bytes is not, in the rsync run's
    wrapper and through keep_batch on the command line and through xargs -0 (stdin)."""
    src = source(tmp_path, {})
    for n in ODD:
        data = os.fsencode(n)
        for d, coming in (("same", data), ("diff", bytes(b ^ 1 for b in data))):
            at(root(t) / d / n, data)
            at(src / d / n, coming)
    paths = [f"{d}/{n}" for d in ("same", "diff") for n in ODD]
    if how == "run":
        assert ship(t, src, paths) == [None] * len(paths)
    else:
        requests = [(p, STAMP, "file", (os.stat(src / p).st_size, NS, sha((src / p).read_bytes())))
                    for p in paths]
        if how == "batch-stdin":   # nothing at these: they only make the records long
            requests += [("f" * 200 + str(i), STAMP, "file", (1, NS, sha(b"x"))) for i in range(150)]
        words = [kscript.q(r) for r in kscript.keep_records(requests, [None] * len(requests))]
        assert (sum(len(w) + 1 for w in words) > kscript.ARGS_LIMIT) == (how == "batch-stdin")
        got = rtrash.RsyncTrash(t).keep_batch(requests)
        assert got[:len(paths)] == [0] * len(ODD) + [len(os.fsencode(n)) for n in ODD]
        assert got[len(paths):] == [0] * (len(requests) - len(paths))
    assert kept_files(t) == {f"{STAMP}.overwritten/diff/{n}": os.fsencode(n) for n in ODD}
