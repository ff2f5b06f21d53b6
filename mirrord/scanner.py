"""The daemon's scanner thread: scan jobs run one at a time, off the main loop.

A scan job (a catch-up walk, a subtree check, a subtree re-send, a reconcile
pass) gets `emit(changes, ticket=None)` and only proposes: its chunks wait in a
bounded queue (SCAN_QUEUE_CHUNKS) until the main thread records them through
the Pipeline, so a walk of a million files holds at most 20 x 500 changes in
memory. A job's return value (or exception) comes back through `results`;
nothing escapes the thread. The job builders below are what the daemon queues.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Callable

from mirrord.catchup import catch_up, resend_subtree
from mirrord.config import SourceConfig
from mirrord.journal import Change
from mirrord.logsetup import kv
from mirrord.pipeline import Ticket

log = logging.getLogger("mirrord.daemon")

SCAN_QUEUE_CHUNKS = 20   # proposals held in memory at most: 20 x 500 changes

Proposal = tuple[list[Change], Ticket | None]
Emit = Callable[..., None]          # emit(changes, ticket=None)
Job = Callable[[Emit], object]


class Scanner(threading.Thread):
    """Runs scan jobs one at a time; each job proposes changes through `proposals`."""

    def __init__(self, proposals: "queue.Queue[Proposal]", wake: Callable[[], None],
                 stop: threading.Event):
        super().__init__(name="scanner", daemon=True)
        self.jobs: queue.Queue[tuple[str, Job]] = queue.Queue()
        self.proposals = proposals
        self.wake = wake
        self.stop = stop
        self.results: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self.busy = False

    def add(self, name: str, job: Job) -> None:
        self.jobs.put((name, job))

    def emit(self, changes: list[Change], ticket: Ticket | None = None) -> None:
        """Queue a chunk for the main thread (blocks while the queue is full, until stop)."""
        while not self.stop.is_set():
            try:
                self.proposals.put((changes, ticket), timeout=0.5)
                self.wake()
                return
            except queue.Full:
                continue
        if ticket is not None:   # stopping: the main thread will not record it
            ticket.lost(changes, "not recorded: the daemon is stopping")

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                name, job = self.jobs.get(timeout=0.5)
            except queue.Empty:
                continue
            self.busy = True
            try:
                self.results.put((name, job(self.emit)))
            except Exception as exc:  # noqa: BLE001 - a failed scan is logged, never fatal
                log.exception(kv(msg="scan failed", job=name))
                self.results.put((name, exc))
            finally:
                self.busy = False
                self.wake()

    def idle(self) -> bool:
        return not self.busy and self.jobs.empty() and self.proposals.empty()


def catch_up_job(db: Path, src: SourceConfig, *, stop: threading.Event,
                 directories: dict[str, bool], modes: dict[str, bool], kind: str,
                 detail: str, subtree: str = "", targets: tuple[str, ...] | None = None,
                 refuse: Callable[[str], str | None] | None = None,
                 cap: tuple[int, float | None] | None = None,
                 links: Callable[[str, os.stat_result], None] | None = None,
                 changed_after_ns: int | None = None) -> Job:
    """A catch-up of `src` (or of one `subtree`) against the shipped rows of `targets`
    (default: all of the source's); returns (kind, source name, detail, CatchUpResult).
    `refuse`: catch_up's rule for deletes below a lost sub-mount (mirrord.submounts);
    `cap`: catch_up's max_delete cap (None: none); `links`: catch_up's hard-link hook;
    `changed_after_ns`: catch_up's ctime bound (mirrord.watched_through)."""
    names = list(src.targets if targets is None else targets)

    def job(emit: Emit):
        return (kind, src.name, detail,
                catch_up(db, src, names, emit, stop=stop, directories=directories,
                         modes=modes, subtree=subtree, refuse=refuse, cap=cap, links=links,
                         changed_after_ns=changed_after_ns))
    return job


def subtree_job(src: SourceConfig, rel: str, targets: tuple[str, ...]) -> Job:
    """Re-send a whole directory (a move that could not be kept as a move)."""
    def job(emit: Emit):
        for chunk in resend_subtree(src, rel, targets):
            emit(chunk)
        return ("subtree", src.name, rel, None)
    return job
