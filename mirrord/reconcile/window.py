"""Bounded parallel lookups for a reconcile pass: content hashes (checksum mode) and
HEADs (targets whose listing lacks mtime and mode), answered on a small pool and
judged in the order they were asked, so memory and requests in flight stay bounded
however long the listings are."""

from __future__ import annotations

import collections
import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from mirrord.errors import MirrordError
from mirrord.targets.base import Target
from mirrord.targets.model import Entry
from mirrord.targets.paths import join
from mirrord.treewalk import file_digest

CHECKSUM_WORKERS = 8        # concurrent content hashes / HEADs
CHECKSUM_WINDOW = 64        # hashes / HEADs in flight at most

Judge = Callable[[Entry, object], "str | None"]


class Window:
    """work(entry) runs on the pool; once answered, judge(entry, answer) gives a reason
    (or None) handed to `on_reason`. A MirrordError or OSError from work goes to
    `on_error(entry, judge, exc)`; anything else propagates from settle()."""

    def __init__(self, on_reason: Callable[[Entry, str], None],
                 on_error: Callable[[Entry, Judge, Exception], None]):
        self.on_reason, self.on_error = on_reason, on_error
        self.pool: ThreadPoolExecutor | None = None
        self.waiting: collections.deque[tuple[Entry, Future, Judge]] = collections.deque()

    def add(self, entry: Entry, work: Callable[[Entry], object], judge: Judge, *,
            settle: bool = True) -> None:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(CHECKSUM_WORKERS, thread_name_prefix="reconcile-sum")
        self.waiting.append((entry, self.pool.submit(work, entry), judge))
        if settle and len(self.waiting) >= CHECKSUM_WINDOW:
            self.settle()

    def settle(self) -> None:
        """Judge the oldest lookup (waiting for its answer)."""
        entry, fut, judge = self.waiting.popleft()
        try:
            answer = fut.result()
        except (MirrordError, OSError) as exc:
            self.on_error(entry, judge, exc)
            return
        reason = judge(entry, answer)
        if reason is not None:
            self.on_reason(entry, reason)

    def drain(self) -> None:
        while self.waiting:
            self.settle()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def content_differs(target: Target, root: str, dest: str, s: Entry) -> bool:
    """Whether the target's copy of source file `s` has other bytes (SHA-256: the
    target's own checksum when it has one, else a read); False when `s` is gone at the
    source meanwhile (the live stream deals with it)."""
    try:
        mine = file_digest(os.path.join(root, s.path))
    except FileNotFoundError:
        return False
    remote_path = join(dest, s.path)
    theirs = target.checksum(remote_path)
    if theirs is None:
        data = target.read(remote_path)
        if data is None:
            return True
        theirs = hashlib.sha256(data).hexdigest()
    return theirs != mine
