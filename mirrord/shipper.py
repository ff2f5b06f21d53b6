"""Bounded workers that apply claimed journal ops to targets.

Each target has its own pool of `workers` threads, so a target that is down
only slows itself. A worker looks at the source *when it runs* (ops are
state-based): a regular file is sent, a directory is created, anything else
(absent, symlink, special file) is removed from the target. Every exception
is caught and becomes an Outcome on the op — nothing escapes a thread.

Every item carries the source's permission bits and exact mtime (ns), and the
Outcome says what mode the target now holds. An 'attr' op (only mode or mtime
changed) sends just those when the target holds the same bytes
(SyncItem.meta_only), and nothing when they already match what was shipped.

A file still open for writing (a scan found it mid-write) is retried, never sent half;
its Outcome is marked `busy`: a wait, not a failure. So is a file that changed while it
was sent, and a file's delete that finds the file back (mirrord.ship_rules). An op of a
path the source's exclude patterns exclude now (queued before a pattern was added) is
skipped. Each target's pool comes from an
injectable executor factory (mirrord.executors: threads, or serial for tests).
Source files are opened beneath the source root without following any
symlink (mirrord.fsutil), and handed to targets as /proc/self/fd/N, so the
bytes shipped are those of the file that was checked.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import queue
import threading
from typing import Callable, Sequence

from mirrord import faults, nested
from mirrord.config import SourceConfig
from mirrord.errors import PermanentError, RetryableError
from mirrord.executors import ExecutorFactory, SerialExecutor, serial, thread_pool
from mirrord.fsutil import BeneathOpener
from mirrord.journal import Journal, Op, Outcome
from mirrord.journal.first_copies import FirstCopies
from mirrord.logsetup import kv
from mirrord.observe import Observed, SourceGuard, observe, observe_op
from mirrord.ship_moves import MoveOps
from mirrord.ship_rules import (error_outcome, in_other_area, meta_only, not_yet, outcome,
                                sync_item, trace, unchanged, unholdable)
from mirrord.submounts import SubMounts
from mirrord.targets.base import Target
from mirrord.targets.model import SyncItem, SyncResult
from mirrord.trash import keeper, swaps
from mirrord.trash.keeper import KeepPolicy
from mirrord.trash.moved_trees import MovedTrees

__all__ = ["BULK_SHARE", "Observed", "SerialExecutor", "Shipper", "SourceGuard", "observe",
           "serial", "thread_pool"]

log = logging.getLogger("mirrord.shipper")

HELD_DELETE = ("deletes of this source are held (a mass-change alarm, or a comparison over "
               "[reconcile] max_delete: mirrord status says which; mirrord resume-deletes)")
BULK_SHARE = 100   # ready ops per worker from which a backlog is shared out over every worker


class Shipper(MoveOps):
    """Runs claimed ops on per-target pools; results come back through `completed()`.

    `executor(target, workers)` makes each target's pool, and its one-thread side pool
    (`<target>.heartbeat`, submit_task): `thread_pool` (the default) or `serial` (tests:
    every batch runs inside submit, on the caller's thread).
    `keep`: the targets with keep_deleted on (mirrord.trash.keeper.policies): before a
    batch reaches one, what it would delete or overwrite is kept first. `mounts`: per
    source, the file systems mounted below its root (mirrord.submounts): a delete below
    one that is lost is refused (retried) as one while the root itself is lost."""

    def __init__(self, targets: dict[str, Target], sources: Sequence[SourceConfig],
                 workers: dict[str, int], *, wake: Callable[[], None] = lambda: None,
                 guards: dict[str, SourceGuard] | None = None,
                 held: Callable[[str], bool] = lambda source: False,
                 on_outcome: Callable[[Outcome], None] | None = None,
                 executor: ExecutorFactory = thread_pool,
                 keep: dict[str, KeepPolicy] | None = None,
                 mounts: dict[str, SubMounts] | None = None,
                 looks: FirstCopies | None = None):
        self.targets = targets
        # the journal's record of puts in flight, for the alarm (None: not followed)
        self.looks = looks
        self.mounts = mounts or {}   # source -> its remembered sub-mounts (mirrord.submounts)
        self.keep = keep or {}
        self.moved_trees = MovedTrees()   # what a directory rename's fallback kept
        self.sources = {s.name: s for s in sources}
        self.workers = workers
        self.wake = wake
        self.guards = guards or {}
        self.held = held   # held(source): its deletes are held (alarm or capped comparison)
        self.on_outcome = on_outcome
        self.pools = {name: executor(name, workers[name]) for name in targets}
        # side tasks (the heartbeat): on the pool one waited behind the batches, and workers
        # all in long copies left a stale heartbeat, as if the daemon had died (submit_task)
        self.side = {name: executor(f"{name}.heartbeat", 1) for name in targets}
        # batches running or queued, and the ops in them; counted down by the worker as it
        # finishes (not when the main thread collects the outcomes), so a worker that is free
        # is seen free while the main thread is still recording what the other one did
        self.inflight = {name: 0 for name in targets}
        self.inflight_ops = {name: 0 for name in targets}
        self._done: queue.SimpleQueue[list[Outcome]] = queue.SimpleQueue()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ main-thread side
    def take_work(self, journal: Journal, target: str) -> None:
        """Claim from the journal what the target's free workers should take now, and
        hand it to them. Journal errors propagate (the caller retries next turn)."""
        if self.capacity(target) <= 0:
            return
        ready = None
        batch = self.targets[target].features.batch_size
        workers = self.workers[target]
        # only batching targets share a backlog out; count no further than useful, and not at
        # all when even a full count could not reach the bulk share (S3: 16 per batch, 8
        # workers: a query per loop turn whose answer could never change the capacity)
        if batch > 1 and workers * batch + self.inflight_ops[target] >= workers * BULK_SHARE:
            ready = journal.count_ready(target, workers * batch)
        ops = journal.claim(target, self.capacity(target, ready),
                            directories=self.targets[target].features.directories)
        if ops:
            self.submit(target, ops)

    def capacity(self, target: str, ready: int | None = None) -> int:
        """How many ops the target's free workers should take now, of `ready` claimable.

        A live trickle (under BULK_SHARE ops per worker, counting those in flight) goes
        to the free workers at once. A bulk backlog is shared out: a free worker takes
        its fair part of all the work, queued plus in flight, so a worker that frees up
        a moment later still finds its part queued. Measured on a first sync over rsync:
        the first worker to free up took the remaining 4,500 files as one run while the
        other, free 10 ms later, sat idle. Counting the work in flight keeps the last
        part from being halved again and again (529, 264, 132, ... files per run).
        """
        workers = self.workers[target]
        free = max(0, workers - self.inflight[target])
        per = self.targets[target].features.batch_size
        if ready is not None:
            work = ready + self.inflight_ops[target]
            if work >= workers * BULK_SHARE:
                per = min(per, -(-work // workers))
        return free * per

    def submit(self, target: str, ops: list[Op]) -> None:
        """Spread ops evenly over the free workers (at most batch_size each), so one worker
        never serialises a batch while another sits idle."""
        free = max(1, self.workers[target] - self.inflight[target])
        size = max(1, min(self.targets[target].features.batch_size, -(-len(ops) // free)))
        if self.looks is not None:   # before any worker can look (mirrord.journal.first_copies)
            self.looks.sending(ops)
        for i in range(0, len(ops), size):
            batch = ops[i:i + size]
            with self._lock:
                self.inflight[target] += 1
                self.inflight_ops[target] += len(batch)
            self.pools[target].submit(self._run_batch, target, batch)

    def completed(self) -> list[Outcome]:
        """Outcomes of finished batches (call from the main thread)."""
        out: list[Outcome] = []
        while True:
            try:
                out.extend(self._done.get_nowait())
            except queue.Empty:
                return out

    def busy(self) -> bool:
        """Work running, queued, or finished with outcomes not yet collected."""
        return any(self.inflight.values()) or not self._done.empty()

    def submit_task(self, target: str, fn: Callable[[], None]) -> None:
        """Run a side task (the heartbeat) for `target` on its own thread, beside the
        workers: never queued behind the batches, never holding an op slot. An exception
        from `fn` is logged, never raised."""
        self.side[target].submit(self._guarded, fn)

    def shutdown(self, *, wait: bool = True) -> None:
        for pool in (*self.pools.values(), *self.side.values()):
            pool.shutdown(wait=wait, cancel_futures=True)

    @staticmethod
    def _guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a side task must never kill a worker
            log.exception("side task failed")

    # ------------------------------------------------------------ worker side
    def _run_batch(self, target_name: str, ops: list[Op]) -> None:
        try:
            outcomes = self.run_ops(self.targets[target_name], ops)
        except BaseException as exc:  # noqa: BLE001 - recorded on every op of the batch
            log.exception(kv(msg="batch failed", target=target_name))
            outcomes = [Outcome(op, error=f"internal error: {exc!r}") for op in ops]
        self._done.put(outcomes)      # queued before the count drops: busy() never misses it
        with self._lock:
            self.inflight[target_name] -= 1
            self.inflight_ops[target_name] -= len(ops)
        self.wake()

    def run_ops(self, target: Target, ops: list[Op]) -> list[Outcome]:
        """Apply ops to one target; one Outcome per op, whatever happens."""
        outcomes: list[Outcome] = []
        items: list[SyncItem] = []
        pending: list[tuple[Op, Observed]] = []
        hidden_ids: set[int] = set()   # ops whose directory an exclude hides (kept below)
        openers = {name: BeneathOpener(str(src.path)) for name, src in self.sources.items()}
        try:
            for op in ops:
                src = self.sources[op.source]
                if src.excluded(op.path):
                    # queued before an exclude pattern was added (a backlog left by the last
                    # run): an excluded path is neither sent nor deleted, as a reconcile never
                    # lists one on a target. Sent, it put back the files the pattern was for
                    # (tests/e2e/test_restart_config_changes.py). Asked as a file: a
                    # directory-only pattern (`thumb/`) then leaves the name itself to the op,
                    # so a file of that name on the target is still replaced or removed.
                    outcomes.append(Outcome(op, "skip"))
                    continue
                claimed = unholdable(op, src, target) or in_other_area(
                    op, src, self.sources.values(), target.name,
                    directories=target.features.directories)
                if claimed is not None:
                    outcomes.append(claimed)
                    continue
                try:
                    # a directory arriving under a directory-only pattern (`temp/`) by a
                    # rename is observed below, as any path whose directory is excluded
                    if op.kind == "move" and not (op.is_dir and src.excluded(op.path, is_dir=True)):
                        moved = self._try_move(target, op, src)
                        if moved is not None:
                            faults.point("shipped", target.name, [op.path])
                            outcomes.append(moved)
                            continue
                    seen = self._look(op, src, target, openers[op.source])
                    hidden = seen.kind == "dir" and src.excluded(op.path, is_dir=True)
                    if hidden:
                        # the name is a directory a directory-only pattern (`temp/`) excludes
                        # now: the file shipped there goes, and no directory is made. Made
                        # (the op was the file's), it stayed empty on the target for good (a
                        # breaker: `rm temp; mkdir temp`, exclude = temp/)
                        seen = Observed("absent")
                    not_yet(op, seen, keeps=target.name in self.keep)
                    if seen.kind == "absent" and op.kind != "delete" and self.held(op.source):
                        # a put claimed before its file was removed would run as a delete;
                        # the hold covers it too: retried, done as a delete once resumed
                        outcomes.append(Outcome(op, error=HELD_DELETE))
                        continue
                except PermissionError as exc:
                    outcomes.append(Outcome(op, error=f"unreadable at the source: {exc.strerror}",
                                            permanent=True))
                    continue
                except (RetryableError, PermanentError) as exc:
                    outcomes.append(error_outcome(op, exc))
                    continue
                only_meta = meta_only(op, seen, target)
                if only_meta is None:   # an attr op that finds nothing to change
                    if seen.fd is not None:
                        os.close(seen.fd)
                    outcomes.append(Outcome(op, "skip"))
                    continue
                item = sync_item(op, src, seen, meta_only=only_meta)
                if hidden:   # a target that looks at the source again (rsync) sees no file
                    item = dataclasses.replace(item, source_root="", source_rel="")
                    hidden_ids.add(op.id)
                items.append(item)
                pending.append((op, seen))
            if items:
                synced = nested.sync(self._sync, target, items, self.sources.values())
                # "stored": before the check after the send (a test may change the source
                # there); "shipped": after it
                faults.point("stored", target.name, [op.path for op, _seen in pending])
                results = [unchanged(seen, res) for (_op, seen), res in zip(pending, synced)]
                if target.name in self.keep:
                    # what an exchange kept, once both names hold it: after the check, as
                    # an S3 put's sha256 is read before its body is sent (a file written
                    # in place between the two would match bytes the target lacks)
                    swaps.settle(target, results)
                faults.point("shipped", target.name, [op.path for op, _seen in pending])
                keeps_mode, dirs = target.features.keeps_mode, target.features.directories
                for (op, seen), res in zip(pending, results):
                    out = outcome(op, seen, res, keeps_mode=keeps_mode, directories=dirs)
                    # below an excluded directory: left on the target, as a catch-up leaves it
                    out.clear_below = out.clear_below and op.id not in hidden_ids
                    outcomes.append(out)
        finally:
            for opener in openers.values():
                opener.close()
            for _op, seen in pending:
                if seen.fd is not None:
                    os.close(seen.fd)
        if log.isEnabledFor(logging.DEBUG):
            trace(outcomes)
        if self.on_outcome is not None:
            for out in outcomes:
                self.on_outcome(out)
        return outcomes

    def _sync(self, target: Target, items: list[SyncItem]) -> list[SyncResult]:
        """target.sync(items), after keeping what they destroy where keep_deleted is on: an
        item whose keep failed is not synced, its result is that error (retried). The items
        synced are the keeper's (a plain put may come back marked to keep by condition)."""
        if target.name not in self.keep:
            return target.sync(items)
        items, kept = keeper.prepare(target, items)
        ready = [item for item, err in zip(items, kept) if err is None]
        synced = target.sync(ready) if ready else []
        self.moved_trees.settle(target, synced)   # what a directory rename's fallback kept
        done = iter(synced)
        return [next(done) if err is None else SyncResult(item, error=err)
                for item, err in zip(items, kept)]

    def _look(self, op: Op, src: SourceConfig, target: Target, opener: BeneathOpener) -> Observed:
        """What the worker finds at `op`'s path (observe_op), followed in `looks`."""
        look = functools.partial(
            observe_op, str(src.path), op.path, keep_open=target.features.needs_local_file,
            opener=opener, guard=self.guards.get(src.name), mounts=self.mounts.get(src.name))
        return look() if self.looks is None else self.looks.observed(op, look)
