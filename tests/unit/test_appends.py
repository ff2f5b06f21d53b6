"""mirrord.appends: which later files count as extending a version sampled before."""

from __future__ import annotations

import os

from mirrord.appends import SAMPLE, extends, sample
from mirrord.observe import observe


def _sampled(path, data: bytes) -> tuple[int, bytes]:
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return len(data), sample(fd, len(data))
    finally:
        os.close(fd)


def _other(byte: int) -> bytes:
    """A byte sure to differ from `byte` (a fixed replacement is the same byte 1 time in 256
    of random bodies)."""
    return bytes([byte ^ 0xFF])


def test_an_append_extends_the_version_and_a_rewrite_does_not(tmp_path):
    f = tmp_path / "f"
    for body in (b"small", os.urandom(SAMPLE + 10), os.urandom(5 * SAMPLE)):
        size, digest = _sampled(f, body)
        assert not extends(str(f), size, digest + b"x")                 # another digest
        with open(f, "ab") as fh:
            fh.write(b"appended")
        assert extends(str(f), size, digest), len(body)
        f.write_bytes(_other(body[0]) + body[1:] + b"appended")                   # the head rewritten
        assert not extends(str(f), size, digest)
        f.write_bytes(body[:-1] + _other(body[-1]) + b"appended")                  # the old tail rewritten
        assert not extends(str(f), size, digest)
        f.write_bytes(body[:-1])                                        # shorter
        assert not extends(str(f), size, digest)


def test_only_the_ends_are_compared_the_documented_limit(tmp_path):
    f = tmp_path / "f"
    body = os.urandom(4 * SAMPLE)
    size, digest = _sampled(f, body)
    middle = 2 * SAMPLE
    f.write_bytes(body[:middle] + _other(body[middle]) + body[middle + 1:] + b"more")
    assert extends(str(f), size, digest)                                # the unsafe side


def test_what_cannot_be_read_extends_nothing(tmp_path):
    f = tmp_path / "f"
    size, digest = _sampled(f, b"data")
    os.unlink(f)
    assert not extends(str(f), size, digest)
    (tmp_path / "real").write_bytes(b"data and more")
    os.symlink(tmp_path / "real", f)
    assert not extends(str(f), size, digest)                           # not followed


def test_the_worker_s_look_samples_only_when_asked(tmp_path):
    """observe(sample=True, prefix=N): the file's sample, and its first N bytes' when it is
    longer (the version kept before, found at its head: an append)."""
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "f"
    size, before = _sampled(f, os.urandom(3 * SAMPLE))
    assert observe(str(tmp_path), "d/f", keep_open=False).sample == b""
    with open(f, "ab") as fh:
        fh.write(b"appended")
    seen = observe(str(tmp_path), "d/f", keep_open=True, sample=True, prefix=size)
    os.close(seen.fd)
    assert seen.prefix_sample == before
    assert seen.sample == _sampled(tmp_path / "copy", f.read_bytes())[1]
    for prefix in (0, seen.size, seen.size + 1):           # nothing asked, or not longer
        assert observe(str(tmp_path), "d/f", keep_open=False, sample=True,
                       prefix=prefix).prefix_sample == b""
