"""A file dated outside 64-bit nanoseconds (after 2262-04-11, before 1677: `touch -d
2300-01-01`, which ext4 and tmpfs keep) is mirrored live like any other, and so is every
file shipped in the same batch and every later change to them: the real `mirrord run`,
either watcher, a local directory, S3 and a mirror host.

A breaker: its ack raised OverflowError, the whole batch stayed claimed, and 200
neighbours' later changes never went out until a restart."""

from __future__ import annotations

import os
import time

from tests.e2e.test_exact_stream import env, start, write  # noqa: F401 - env: the fixture

Y2300 = 10_413_792_000 * 10**9 + 5
Y1600 = -11_676_096_000 * 10**9


def test_far_dated_files_and_their_neighbours_are_mirrored_live(env):
    src = env.src
    start(env)
    for name, ns in (("future.jpg", Y2300), ("past.jpg", Y1600)):
        write(src / name, name.encode())
        os.utime(src / name, ns=(ns, ns))
    for i in range(50):
        write(src / f"n{i:02d}.jpg", b"v1")
    env.assert_exact(passes_allowed=True)
    time.sleep(0.5)
    for i in range(50):
        write(src / f"n{i:02d}.jpg", b"v2, longer")
    write(src / "future.jpg", b"future, rewritten")
    os.utime(src / "future.jpg", ns=(Y2300, Y2300))
    env.assert_exact(passes_allowed=True)
