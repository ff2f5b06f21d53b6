"""What a worker's look at the source decides for one op, beside sending it.

- unchanged: a file that changed while it was being sent is a wait (ChangedWhileSent, a
  SourceBusy), not recorded as shipped (observe.changed_since), though the target holds it;
- not_yet: a file's delete that finds the file back, or a put that finds it gone, waits
  once for the change that explains it (its event is still to be read);
- meta_only: an 'attr' op needs only mode and mtime set, nothing at all, or a full put;
- error_outcome: an exception becomes the op's Outcome (permanent, busy or retried);
- unholdable, in_other_area: an op at a path the target can never hold, or that is another
  source's there: refused while the source holds it, skipped once it does not;
- sync_item, outcome: what a target is handed for an op, and what is recorded of its answer;
- trace: the DEBUG line per op done or failed ([mirrord] log_level = debug).
Pure functions of the op, what was observed and what the target answered: the Shipper
(mirrord.shipper) calls them on its workers.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable

from mirrord import nested
from mirrord.errors import (BecameAFile, ChangedWhileSent, MaybeStored, PermanentError,
                            RetryableError, SourceBusy)
from mirrord.journal import Op, Outcome
from mirrord.logsetup import kv, redact
from mirrord.observe import Observed, changed_since
from mirrord.targets.base import Target
from mirrord.config import SourceConfig
from mirrord.targets.model import SyncItem, SyncResult
from mirrord.targets.paths import join

log = logging.getLogger("mirrord.shipper")   # trace(): the shipper's own lines


def unchanged(seen: Observed, res: SyncResult) -> SyncResult:
    """`res`, or a ChangedWhileSent error (a SourceBusy) when the file it sent changed while
    it was being sent (observe.changed_since): then what the target got is not recorded as
    shipped, and the row is retried as a wait, not a failure; the Outcome says the target
    holds it (`landed`: error_outcome)."""
    item = res.item
    if (res.error is None and item.kind == "file" and not item.meta_only
            and changed_since(seen, item.source_root, item.source_rel)):
        return SyncResult(item, error=ChangedWhileSent(
            f"{item.source_rel!r} changed at the source while it was being sent: sent again "
            f"once it is quiet"))
    return res


def not_yet(op: Op, seen: Observed, *, keeps: bool) -> None:
    """Raise SourceBusy (seen.fd closed) when what the worker finds at the path on an op's
    first try is explained by a change whose event is still to be read, or was read while
    the op ran (then seq moved on and the row runs again at once, claims._busy). Either
    way the row runs again with that change in it.

    - A file's delete (not a tree's) that finds a file: the file came back after the delete
      was recorded. Sent now, ahead of what that read brings, the file could stand on the
      target under a directory whose removal comes in the same read (`rm d/x` read and
      claimed, then `rmdir d; mkdir d; echo > d/x`): the removal kept it with its directory,
      the put sent it again, and its next removal kept it a second time (issue 17's dir
      flip; tests/integration/test_tree_removal_waits_below.py).
    - A put, attr or mkdir that finds nothing, on a target that keeps what deletes destroy
      (`keeps`: keep_deleted): the path was removed or renamed since its row was queued.
      Sent now, it was a plain delete that kept the bytes as 'deleted' though a rename had
      them live on at the new name. The rename's row (a move's source end, or journal
      enqueue_move's fallback) carries the new name, so its delete keeps nothing where the
      bytes are (keeper.lives_on; `chmod x; mv x y`:
      tests/integration/test_op_in_flight_finds_its_file_gone.py). A second try with
      nothing read (an event lost) sends the delete. A target that keeps nothing gets the
      delete at once: there it is exact whatever the path's later rows say.
    - A mkdir (not a tree's) that finds a file, on any try: the path became a file since
      its row was claimed (`rm -r X; echo > X`). A mkdir in flight writes no file: on a
      target without directories (S3) the claim let the files below X go beside it
      (journal.key_overlaps), and sent now, PutObject X ran beside a put below X/, a pair
      SeaweedFS loses; on every target a crash that cut it short would leave a file the
      journal cannot know of (claim_owners.CUT_SHORT counted each such mkdir as a file
      landed). The row is made that file's put (errors.BecameAFile), claimed under the
      put's rule. Not sent on a retry either: a retried mkdir counted as writing at X, and
      one retried after an outage waited while the files arriving below X kept going
      first. Made a put by the worker, not left to wait for the change: a subtree check's
      stale mkdir recorded over the file's put has no change to come (a property test,
      tests/unit/test_exchange_properties.py)."""
    if op.kind == "mkdir" and not op.tree and seen.kind == "file":
        if seen.fd is not None:
            os.close(seen.fd)
        raise BecameAFile(f"{op.path!r} is a file at the source since its directory's mkdir "
                          "was queued: its row is made the file's put")
    if op.attempts != 0:
        return
    if op.kind == "delete" and not op.tree and seen.kind == "file":
        if seen.fd is not None:
            os.close(seen.fd)
        raise SourceBusy(f"{op.path!r} is back at the source after its delete was recorded: "
                         "sent once that change is read")
    if keeps and op.kind in ("put", "attr", "mkdir") and seen.kind == "absent":
        raise SourceBusy(f"{op.path!r} is gone from the source since its {op.kind} was "
                         "recorded: sent once that change is read")


def meta_only(op: Op, seen: Observed, target: Target) -> bool | None:
    """For an 'attr' op (only mode or mtime changed at the source): True when the target
    already holds these bytes (same size as shipped) and only mode and mtime need setting,
    None when even those match what was shipped (nothing to do: e.g. a hard link's link
    count changed), False otherwise: send in full, like a put (no shipped row, other size,
    a directory, absent). Any other op: False."""
    if op.kind != "attr" or op.tree or seen.kind != "file" or op.shipped is None:
        return False
    size, mtime_ns, mode = op.shipped
    if size != seen.size:
        return False
    now = (seen.size, seen.mtime_ns, seen.mode if target.features.keeps_mode else None)
    return None if now == (size, mtime_ns, mode) else True


def error_outcome(op: Op, exc: BaseException) -> Outcome:
    """The Outcome of `op` that failed with `exc`: permanent or retried, a wait (busy), and
    `landed` when the target holds, or may hold, what its put sent though no ack is
    recorded: the file changed while sent (ChangedWhileSent), or the request left whole
    and its answer never came (MaybeStored: a timeout after the body, on S3)."""
    permanent = isinstance(exc, PermanentError) and not isinstance(exc, RetryableError)
    # MaybeStored comes only from a target's put, whatever the row's kind (a delete's
    # or a tree row's worker that finds a file sends it)
    landed = isinstance(exc, (ChangedWhileSent, MaybeStored))
    return Outcome(op, error=redact(f"{type(exc).__name__}: {exc}"), permanent=permanent,
                   busy=isinstance(exc, SourceBusy), landed=landed,
                   now_file=isinstance(exc, BecameAFile))


def sync_item(op: Op, src: SourceConfig, seen: Observed, *, meta_only: bool = False) -> SyncItem:
    """The SyncItem a target gets for `op` of `src`, from what the worker `seen` there
    (a file handed over as /proc/self/fd/N: the bytes checked are the bytes sent)."""
    return SyncItem(
        path=join(src.dest, op.path), kind=seen.kind,
        local=f"/proc/self/fd/{seen.fd}" if seen.fd is not None else "",
        size=seen.size, mtime=seen.mtime, tree=op.tree,
        source_root=str(src.path), source_rel=op.path,
        mode=seen.mode, mtime_ns=seen.mtime_ns, meta_only=meta_only, when=op.event_time,
        first_when=op.first_seen,
        # a delete's or put's src: where the bytes the target holds at the path went
        # (the journal's rename fallback, an exchange): mirrord.trash.keeper, swaps; a tree
        # removal's (also under a mkdir): a directory's fallback, mirrord.trash.moved_trees
        moved_to=join(src.dest, op.src) if op.src and (
            op.kind in ("delete", "put") or (op.tree and op.kind == "mkdir")) else "")


def outcome(op: Op, seen: Observed, res: SyncResult, *, keeps_mode: bool,
            directories: bool = True) -> Outcome:
    """The Outcome recorded for `op` once the target answered `res` for what was `seen`
    (`keeps_mode`: the target stores permission bits, so `shipped` records them;
    `directories`: Features.directories, without which a file's put leaves what stands
    below its name, `kept_below`)."""
    if res.error is not None:
        return error_outcome(op, res.error)
    mode = seen.mode if keeps_mode else None   # `shipped` records what the target holds
    if seen.kind == "file":
        entry = res.entry
        return Outcome(op, "meta" if res.item.meta_only else "put", size=seen.size,
                       mtime_ns=seen.mtime_ns, mode=mode, ctime_ns=seen.ctime_ns,
                       token=entry.token if entry is not None else None,
                       kept_below=not directories and not op.tree)
    if seen.kind == "dir":
        # a tree op just cleared everything below a path that is a directory again:
        # what the source holds below it now must be re-sent (the rows that sent it
        # may have run before this op, e.g. a stale catch-up delete)
        return Outcome(op, "mkdir", mtime_ns=seen.mtime_ns, is_dir=True, rescan=op.tree,
                       mode=mode)
    # nothing at the path: a directory the target held there was removed only if empty
    # (a file's delete, or a mkdir whose directory is gone, is no tree op), so what the
    # record names below it is removed by a tree op the ack queues (claims._done)
    return Outcome(op, "delete", clear_below=not op.tree)


def unholdable(op: Op, src: SourceConfig, target: Target) -> Outcome | None:
    """The Outcome for `op` when nothing can ever stand at its path on `target` (else
    None): Target.cannot_hold, e.g. mirrord's own `.mirrord/` at the root (a source with
    an empty dest holding a `.mirrord` of its own), an S3 key that is not UTF-8. A
    permanent error while the source holds something there (shown: the mirror cannot hold
    it); "skip" once it holds nothing, as nothing of it was ever sent, and no delete may
    reach the target's own area (its heartbeat, trash, staging). Before, that delete was
    refused for good: `mkdir src/.mirrord; rmdir src/.mirrord` left the target degraded,
    then stalled, its heartbeat pending (switchover refused), through restarts (found by
    trying it as a user). As in_other_area."""
    why = target.cannot_hold(join(src.dest, op.path))
    return None if why is None else _refused_while_held(op, src, f"{why}: not mirrored there")


def in_other_area(op: Op, src: SourceConfig, sources: Iterable[SourceConfig],
                  target: str, *, directories: bool) -> Outcome | None:
    """The Outcome for `op` when its path on `target` is another source's (else None):
    below that source's area (mirrord.nested.claimed_by: the inner source owns it), or,
    on a target with directories, the area's own path or a parent of it for anything
    but a directory (a file, a symlink, or the delete of one there replaced or removed
    the other source's whole area: a breaker's file named `media` beside B's dest). A
    permanent error while the source holds something there (shown: the mirror cannot
    hold it); "skip" once it holds nothing, as nothing of it was ever sent (its rows
    stayed failing for good after `rm -rf` of them: a breaker)."""
    where = join(src.dest, op.path)
    owner = nested.claimed_by(sources, target, src, where)
    what = "lies in the area of"
    if owner is None and directories and not (op.is_dir or op.kind == "mkdir" or op.tree):
        above = nested.areas_below(sources, target, where, besides=src.name)
        owner = next((s for s in sources if s.dest and s.dest in above
                      and s.name != src.name), None)
        what = "is where a file would replace the area of"
    if owner is None:
        return None
    return _refused_while_held(op, src, f"{where!r} {what} [source:{owner.name}] (dest = "
                                        f"{owner.dest}) on this target: not mirrored there")


def _refused_while_held(op: Op, src: SourceConfig, error: str) -> Outcome:
    """`op` at a path its target must not take: a permanent `error` while the source
    holds something there, "skip" once it holds nothing (nothing of it was ever sent)."""
    if not os.path.lexists(os.path.join(src.path, op.path)):
        return Outcome(op, "skip")
    return Outcome(op, error=error, permanent=True)


def trace(outcomes: Iterable[Outcome]) -> None:
    """One DEBUG line per op a worker finished ([mirrord] log_level = debug): the row as
    claimed (kind, tree, seq, src, attempts) and what was done with it, so that a path
    the mirror got wrong can be followed through the run's log (an exactness fault seen
    once in CI, not reproduced after: its log said nothing of the ops)."""
    for out in outcomes:
        op = out.op
        fields = dict(target=op.target, source=op.source, path=op.path, kind=op.kind,
                      tree=int(op.tree), seq=op.seq, src=op.src or "-", attempts=op.attempts,
                      did=out.shipped_kind or "-", rescan=int(out.rescan), check=int(out.check))
        if out.error is None:
            log.debug(kv(msg="op done", **fields))
        else:
            log.debug(kv(msg="op failed", **fields, error=out.error))
