"""A FIFO planted in the mirror where a file of ours is read, on the targets whose root is a
directory (local, rsync through a real sshd).

Shape: `mkfifo <root>/p` or `mkfifo <root>/.mirrord/heartbeat.json` (anyone who can plant
the symlinks of tests/targets/test_planted_symlinks.py can make a FIFO as easily; no
writer ever opens it), then read("p"), checksum("p") or read_meta("heartbeat.json"). Their
contract (LocalTarget.read: "the bytes of the regular file at `path`, or None (absent, a
directory, a symlink...)") is None: a FIFO is no regular file. Rsync asks `[ -f p ]` first
and answers None.

What goes wrong (found by trying it), local: the call never returns. open(2) of a FIFO
for reading blocks until a writer opens it (fifo(7)), so the reconciler's checksum, the
conformance read and `mirrord failover`'s read of the heartbeat (failover/heartbeat.py)
hang for good on a mirror where someone planted one. Diagnosis:
mirrord/targets/local_parents.open_file (used by LocalTarget.read, checksum, read_meta)
opens with O_RDONLY | O_NOFOLLOW | O_CLOEXEC and no O_NONBLOCK, and never checks
S_ISREG of what it opened; mirrord/fsutil.py's _FILE_FLAGS (open_file_beneath) carries
O_NONBLOCK for this reason already.

Bounded: each call runs in a thread joined for at most BOUND seconds (a bound, not a
timing: a correct call returns at once); a call still blocked is released by opening the
FIFO for writing, then the test fails.
"""

from __future__ import annotations

import os
import threading

import pytest

from mirrord.errors import MirrordError

from .conftest import make_target
from .test_planted_symlinks import root_of

BOUND = 10.0   # seconds


def _returns(call, fifo) -> bool:
    """True when call() returned (its value or error) within BOUND seconds."""
    done = threading.Event()

    def run():
        try:
            call()
        except (MirrordError, OSError):   # an error is an answer too; only a hang fails
            return
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    if done.wait(BOUND):
        return True
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)   # a reader waits: release it
    os.close(fd)
    done.wait(BOUND)
    return False


@pytest.mark.parametrize("kind", ["local", "rsync"])
@pytest.mark.parametrize("call", ["read", "checksum", "read_meta"])
def test_a_planted_fifo_is_not_a_file(kind, call, request, tmp_path):
    t = make_target(kind, request, tmp_path)
    t.open()
    try:
        if call == "read_meta":
            fifo = root_of(t) / ".mirrord" / "heartbeat.json"
            fn = lambda: got.append(t.read_meta("heartbeat.json"))
        else:
            fifo = root_of(t) / "p"
            fn = lambda: got.append(getattr(t, call)("p"))
        os.mkfifo(fifo)
        got: list = []
        assert _returns(fn, fifo), f"{call} blocked on a FIFO planted at {fifo.name}"
        assert got == [None]
    finally:
        t.close()
