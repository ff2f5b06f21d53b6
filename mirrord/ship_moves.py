"""A claimed move op run as a rename on the target, when a rename gives the right result:
the shipper's handling of moves (a mixin of Shipper, which owns the pools, the keep
policies and the item and outcome builders it uses).

- A file move is kept only when the target's copy of the old name is what the new name
  holds now (bytes, mtime and mode as shipped: `Op.src_shipped`); else the new name is sent
  whole.
- With keep_deleted on, what the new name held on the target is kept first.
- A directory move carries what the target held below the old name, which can lack a file
  that was there at the rename (an op below it that looked at the source after the rename
  ran as a delete): its Outcome asks for a check of the new name (`Outcome.check`).
- A directory whose old name never reached the target (NotFound) is made at the new name,
  and what is inside it is re-sent.
- So is a directory whose old or new name holds another source's area on the target
  (mirrord.nested): a rename would carry that area along or replace it. The delete of the
  old name that follows the move spares the area.
"""

from __future__ import annotations

from mirrord import nested
from mirrord.config import SourceConfig
from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.journal import Op, Outcome
from mirrord.observe import Observed, observe
from mirrord.ship_rules import error_outcome, outcome, sync_item
from mirrord.targets.base import Target
from mirrord.targets.paths import join
from mirrord.trash import keeper


class MoveOps:
    """`_try_move(target, op, src)` for Shipper: the move's Outcome, or None to send the
    new name instead."""

    def _try_move(self, target: Target, op: Op, src: SourceConfig) -> Outcome | None:
        """Rename on the target when that gives the right result; None: send instead."""
        assert op.src is not None
        old = join(src.dest, op.src)
        if nested.claimed_by(self.sources.values(), target.name, src, old):
            return None   # the old name is in another source's area: its file is not ours
        if target.cannot_hold(old):
            return None   # nothing was ever sent there (`mv src/.mirrord src/m`)
        seen = observe(str(src.path), op.path, keep_open=False)
        if seen.kind == "absent" or (seen.kind == "dir") != op.is_dir:
            return None
        if op.is_dir and nested.holds_area(self.sources.values(), target.name,
                                           join(src.dest, op.src), join(src.dest, op.path)):
            return self._make_moved_dir(target, op, src, seen)   # see the module docstring
        mode = seen.mode if target.features.keeps_mode else None
        if not op.is_dir and op.src_shipped != (seen.size, seen.mtime_ns, mode):
            # the target's copy of src is not what dst holds now: other bytes, another
            # mtime, or another mode (a rename keeps the inode's mode; a mode never recorded,
            # schema 1, is not known to match): send dst whole instead
            return None
        try:
            if target.name in self.keep:   # the move replaces what dst holds: keep it first
                keeper.keep_move_dst(target, join(src.dest, op.path), is_dir=op.is_dir,
                                     when=op.event_time)
            target.move(old, join(src.dest, op.path))
        except NotFound:
            return self._make_moved_dir(target, op, src, seen) if op.is_dir else None
        except (RetryableError, PermanentError) as exc:
            return error_outcome(op, exc)
        if op.is_dir and target.features.directories:
            # a rename keeps the mode and mtime the target's directory had: a chmod just
            # before or after the `mv` (folded into this op, or seen before the rename
            # reached the target) was lost on local and rsync targets, each saying in_sync
            # (a breaker); the moved directory gets what the source shows now
            (res,) = self._sync(target, [sync_item(op, src, seen)])
            if res.error is not None:
                return error_outcome(op, res.error)
        # A directory move carries what the target held below src, and that can lack a file
        # that was there at the rename: an op below src that looked at the source after the
        # rename but was acked before the move was recorded ran as a delete (its file had
        # left under the new name), so nothing was pending there when the move was kept.
        # The check compares what now lies below dst with what was shipped and sends the
        # difference (found by tests/reliability/test_watch_limits.py in CI: a file written
        # just before its directory was renamed was missing on S3).
        return Outcome(op, "move", size=seen.size, mtime_ns=seen.mtime_ns, is_dir=op.is_dir,
                       mode=mode, check=op.is_dir,
                       merged=op.is_dir and target.features.move_merges)

    def _make_moved_dir(self, target: Target, op: Op, src: SourceConfig, seen: Observed) -> Outcome:
        """A directory renamed before its old name reached the target: create it at dst
        (with its mode), then have what is inside it re-sent. An empty directory has no
        contents for the rescan to yield: without the mkdir it was recorded as done and
        never created (bug: renamed empty directory missing on the mirror)."""
        (res,) = self._sync(target, [sync_item(op, src, seen)])
        out = outcome(op, seen, res, keeps_mode=target.features.keeps_mode,
                      directories=target.features.directories)
        out.rescan = out.error is None
        return out
