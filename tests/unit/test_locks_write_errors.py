"""locks.take: every OS error making, opening or writing the lock file is a StateDirError
naming the file (a config error naming `[mirrord] state_dir`, exit 2), never a bare
OSError: the pid's write on a full file system was "[Errno 28]", exit 1."""

from __future__ import annotations

import errno
import os

import pytest

from mirrord import locks
from mirrord.errors import StateDirError


@pytest.mark.parametrize("call", ["write", "ftruncate"])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS,
                                  errno.EACCES])
def test_a_lock_file_that_cannot_be_written_is_a_state_dir_error(tmp_path, monkeypatch,
                                                                 call, code):
    def fail(*_a):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(locks.os, call, fail)
    with pytest.raises(StateDirError) as info:
        locks.take(tmp_path, locks.DAEMON)
    assert info.value.path == tmp_path
    assert info.value.reason == f"cannot hold daemon.lock: {os.strerror(code)}"
    monkeypatch.undo()
    with locks.take(tmp_path, locks.DAEMON):   # the descriptor was closed: not held
        pass


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EACCES])
def test_a_lock_file_that_cannot_be_made_is_a_state_dir_error(tmp_path, monkeypatch, code):
    def fail(*_a, **_k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(locks.os, "open", fail)
    with pytest.raises(StateDirError, match=f"cannot hold reconcile.lock: {os.strerror(code)}"):
        locks.take(tmp_path, locks.RECONCILE)
