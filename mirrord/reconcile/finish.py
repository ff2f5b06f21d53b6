"""The end of a reconcile pass: whether its deletes go, and the repairs that wait for them.

A mixin of mirrord.reconcile.engine's pass (it reads the pass's result, delete plan,
target, source and held repairs). The rules of which extras may be deleted are
mirrord.reconcile.deletes; the repairs that replace an extra of the other type, which go
only with that extra's delete, are mirrord.type_swaps.
"""

from __future__ import annotations

from pathlib import Path

from mirrord.reconcile.deletes import held_refusal, lost_mount_refusal


class FinishDeletes:
    """`_finish_deletes(identity, db_path)`, called once at the end of a pass."""

    def _finish_deletes(self, identity: tuple[int, int, int | None] | None,
                        db_path: Path) -> None:
        """Decide the deletes (refused: counted and described, none proposed; else proposed
        through emit_deletes) and send or keep back the repairs waiting for them."""
        res, plan = self.res, self.deletes
        if not plan.total:   # none held, but those a failed listing left undecided
            self._release_swaps(False, "the listing failed before it could tell")
            return
        if not plan.delete:
            res.kept_extra = plan.total
            self._release_swaps(False, "deletes are off (--no-delete, [reconcile] delete)")
            return
        where = f"target {self.target.name!r} (source {self.source.name!r})"
        reason = held_refusal(db_path, self.source.name, where, plan.total) or plan.refusal(
            where=where, complete=res.complete, unreadable=res.unreadable, root=self.root,
            identity=identity, source_files=self.res.compared,
            target_entries=res.target_entries) or lost_mount_refusal(
            db_path, self.source, [e.path for e in plan.extras], where, plan.total)
        if reason is not None:
            res.refused_deletes, res.delete_refusal = plan.total, reason
            res.refused = plan.described()   # a dry run lists them (the real run would refuse)
            self._release_swaps(False, "their removal is refused this pass")
            return
        sent = self._release_swaps(True, "")
        res.deleted, res.reappeared = plan.propose(source=self.source.name, target=self.target.name,
                                                   root=self.root, emit=self.emit_deletes)
        if sent:    # after the removals they replace, with them: one op per path in the journal
            self.emit_deletes(sent)

    def _release_swaps(self, allowed: bool, why: str) -> list:
        """The repairs that replace an extra of the other type, when its delete goes (sent
        with the deletes, after them: the session sends those only once every other repair
        succeeded); else none, and the pass says why they are kept back."""
        if self.swaps is None:
            return []
        sent, kept = self.swaps.release(None if allowed else set())
        if kept:
            self.res.bytes -= sum(c.size for c in kept if c.kind == "put")
            first = kept[0].path
            self.res.errors.append(
                f"{len(kept)} repairs not sent (first: {first!r}): each would replace what "
                f"{self.target.name!r} holds at its path (a directory and what lies below "
                f"it, or a file), and {why}")
        return sent
