"""A large S3 put that sends again the very version the bucket holds, while the source file
is written in place between the pass that hashes it and the pass that sends its body,
keeps the old bytes (keep_deleted, both trash modes, real SeaweedFS).

Found by a review (helper-139): a put of 8 MiB or more reads the file twice (sha256, then
s3transfer's body). Finding its own version already there (a re-send: same size and
mtime), it kept nothing ('copy' mode) or deleted the version it left noncurrent
(versioning), and a write in place between the two reads put other bytes under the old
size and mtime: the old bytes were kept nowhere. The keep now happens whatever stands
there, and the copy of a re-sent version (or the version left) is dropped only when the
file did not change while it was sent (conditional.keep_before, upload._put_file)."""

from __future__ import annotations

import hashlib
import os

import pytest

from mirrord.targets.s3 import upload
from tests.targets.test_s3_keep_by_condition import (OLD_NS, STAMP, raw, s3_on, seed, ship,  # noqa: F401
                                                     src, trash_keys, versioned, write)

SIZE = 9 << 20   # through s3transfer (one PutObject or a multipart upload: t): read twice


@pytest.fixture(params=["copy", "copy-multipart", "versioning"])
def t(request, seaweedfs):
    """'copy': one PutObject through s3transfer (threshold above SIZE); 'copy-multipart'
    and 'versioning': a multipart upload (threshold 8 MiB, parts of 5 MiB)."""
    if request.param == "versioning":
        target = versioned(seaweedfs)
    else:
        threshold = 16 << 20 if request.param == "copy" else 8 << 20
        target = s3_on(seaweedfs, seaweedfs.new_bucket(), threshold=threshold)
    yield target
    target.close()


def resend(t, src, tmp_path, monkeypatch, *, torn: bool,
           ns: int = OLD_NS) -> tuple[bytes, bytes]:
    """The bucket holds X at v/big.bin (mtime OLD_NS); the source holds X too (mtime `ns`)
    and a put of it runs, the file written in place with Y after it was hashed when
    `torn`. (X, Y)."""
    x, y = os.urandom(SIZE), os.urandom(SIZE)
    seed(t, tmp_path, "v/big.bin", x)
    write(src, "v/big.bin", x)
    os.utime(src / "v/big.bin", ns=(ns, ns))
    if torn:
        real = hashlib.file_digest

        def digest_then_write(fh, name):
            digest = real(fh, name)
            with open(src / "v/big.bin", "r+b") as w:
                w.write(y)
            return digest
        monkeypatch.setattr(upload.hashlib, "file_digest", digest_then_write)
    ship(t, src, "v/big.bin")
    monkeypatch.undo()
    return x, y


def kept_bytes(t, tmp_path) -> list[bytes]:
    out = []
    for n, k in enumerate(t.trash_list()):
        t.trash_fetch(k, str(tmp_path / f"kept-{n}"))
        out.append((tmp_path / f"kept-{n}").read_bytes())
    return out


def test_a_torn_resend_keeps_the_old_bytes(t, src, seaweedfs, tmp_path, monkeypatch):
    x, y = resend(t, src, tmp_path, monkeypatch, torn=True)
    assert raw(seaweedfs, t, "v/big.bin")["Body"].read() == y   # torn: sent again later
    assert x in kept_bytes(t, tmp_path), "the old bytes were kept nowhere"


@pytest.mark.parametrize("ns", [OLD_NS, OLD_NS + 2 * 10**9 + 9], ids=["re-send", "touched"])
def test_a_whole_resend_keeps_nothing(t, src, seaweedfs, tmp_path, monkeypatch, ns):
    """README: a put that finds the bytes it sends already there keeps nothing, under a
    new mtime too (a touch seen live as a write kept a duplicate: a trial, helper-161);
    the object takes the new mtime."""
    x, _y = resend(t, src, tmp_path, monkeypatch, torn=False, ns=ns)
    assert raw(seaweedfs, t, "v/big.bin")["Body"].read() == x
    assert list(t.trash_list()) == [] and trash_keys(seaweedfs, t) == set()
    assert t.stat("v/big.bin").mtime_ns == ns


@pytest.mark.parametrize("size", [SIZE, 4096], ids=["large", "small"])
def test_a_file_rewritten_before_the_put_opened_it_keeps_the_old_bytes(t, src, seaweedfs,
                                                                        tmp_path, size):
    """The shipper observed X (size, mtime OLD_NS) and the file was rewritten in place with
    Y, another mtime, before the put opened it: the put sends Y under X's size and mtime,
    and must not take the bucket's X for the version it sends (a review, helper-140)."""
    x, y = os.urandom(size), os.urandom(size)
    seed(t, tmp_path, "v/f.bin", x)
    write(src, "v/f.bin", y)                                   # its own mtime: now
    t.put("v/f.bin", str(src / "v/f.bin"), size=size, mtime=OLD_NS / 1e9, mtime_ns=OLD_NS,
          keep_stamp=STAMP)
    assert x in kept_bytes(t, tmp_path), "the old bytes were kept nowhere"
