"""The mass-change alarm's count of what a comparison proposes (mirrord.daemon_alarm).

A catch-up's deletes (changes made while the daemon was stopped, or lost in an overflow)
are counted through `observe_scan()`, the tree removals queued at start for ops the last
run left in flight through `observe_start()`; see mirrord.daemon_alarm for the rules. A
mixin of AlarmWatch: it uses the watch's `d` (the daemon), `alarms`, `counted_below`,
`resuming`, `exempt` and its `_fired`, `_publish`, `_recheck`, `_write_holds`,
`_first_look`. Runs on the main thread only.
"""

from __future__ import annotations

import os

from mirrord.journal import Change


def ancestors(path: str):
    """The ancestor directories of `path` ('a/b/c' -> 'a/b', 'a'), nearest first."""
    cut = path.rfind("/")
    while cut > 0:
        path = path[:cut]
        yield path
        cut = path.rfind("/")


class CatchUpCounting:
    """AlarmWatch's counting of comparisons (catch-ups) and of start-up tree removals."""

    def observe_scan(self, changes: list[Change]) -> None:
        """Count the file deletes of a chunk a catch-up proposed (not a reconcile pass's:
        those come with a ticket and are `repair`s, capped by max_delete) before it is
        recorded, so a hold it fires is in the journal before these deletes are. A catch-up
        proposes one delete per target and one per file below a removed directory, so each
        file counts once and a directory not at all; a path whose row is already queued
        (a held delete seen again after a restart) was counted when it was recorded; a file
        a rename recorded lately took to another name, standing there in the source, is no
        delete (mirrord.alarm_moved: the look an exchange asks for)."""
        self._first_look()
        by_source: dict[str, dict[str | None, list[str]]] = {}
        for ch in changes:
            if ch.source in self.resuming:
                continue
            if ch.kind == "delete" and not ch.tree and not ch.repair and ch.source in self.alarms:
                target = ch.targets[0] if ch.targets else None
                by_source.setdefault(ch.source, {}).setdefault(target, []).append(ch.path)
        self._write_holds()
        for name, per_target in by_source.items():
            self._recheck(name)
            fresh: set[str] = set()
            counted = self.counted_below.get(name, set())
            for target, paths in per_target.items():
                # below a queued directory removal: counted when the removal was recorded
                trees = counted if target is None else (
                    counted | self.d.journal.queued_tree_removals(target, name))
                under = {p for p in paths if any(a in trees for a in ancestors(p))}
                for p in under:   # not counted; spared where a rename took it (revived)
                    self._moved_on(name, p, target)
                paths = [p for p in paths if p not in under]
                queued = {} if target is None else self.d.journal.row_states(
                    target, name, [os.fsencode(p) for p in paths], held=False)
                fresh.update(p for p in paths if os.fsencode(p) not in queued
                             and not self._moved_on(name, p, target))
            alarm = self.alarms[name]
            n = self._unexempt(name, len(fresh))
            if n and alarm.add(n):
                self._fired(self.d.cfg.source(name), alarm)
            self._publish(name)

    def _moved_on(self, source: str, path: str, target: str | None) -> bool:
        """While renames are noted lately (mirrord.alarm_moved), whether a comparison's
        delete of `path` destroys nothing: the target's record no longer holds it (a rename
        acked since took it away), or the very file it holds stands at a rename's other
        name (the look an exchange asks for). Without such renames, no look at all."""
        if not self.moved.any(source):
            return False
        version = self.d.journal.shipped_version(source, path, target)
        if version is None:
            return True
        there = self.moved.copy_at(source, str(self.d.cfg.source(source).path), path, version)
        if there is not None:
            self.moved.spare(source, path, there)   # a removal of `there` counts it (revived)
        return there is not None

    def _unexempt(self, source: str, n: int) -> int:
        """`n` deletes of a comparison, less what a resume made while stopped let go."""
        free = min(n, self.exempt.get(source, 0))
        if free:
            self.exempt[source] -= free
        return n - free

    def observe_start(self, changes: list[Change]) -> None:
        """Count the tree removals queued at start (mirrord.interrupted: each for one
        target) before they are recorded: the files that target's `shipped` rows hold
        below each, at least 1; fire when over, so a hold is in the journal first."""
        self._write_holds()
        self._first_look()
        for ch in changes:
            alarm = self.alarms.get(ch.source)
            if alarm is None or ch.kind != "delete" or not ch.tree or ch.source in self.resuming:
                continue
            n = max(1, self.d.journal.files_removed_with(ch.source, ch.path, target=ch.targets[0]))
            self.counted_below.setdefault(ch.source, set()).add(ch.path)
            n = self._unexempt(ch.source, n)
            if n and alarm.add(n):
                self._fired(self.d.cfg.source(ch.source), alarm)
            self._publish(ch.source)

    def catch_up_done(self, source: str) -> None:
        """A catch-up of `source` ended: what observe_start counted is counted no more, and
        a resumed source's deletes count again."""
        self.counted_below.pop(source, None)
        self.resuming.discard(source)
        self.exempt.pop(source, None)
