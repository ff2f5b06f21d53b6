"""What the mass-change alarm asks the journal (mirrord.alarm_batch, daemon_alarm): whether a
write replaces a file a target holds, which versions it holds, and how many files a tree
removal takes. Read-only: nothing here writes the state database. A mixin of Journal.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from typing import Callable, Iterable

from mirrord.journal import held_files, read, removed_files
from mirrord.journal.barriers import _Barriers, _self_and_ancestors
from mirrord.journal.first_copies import UNKNOWN_ROW, Extends, FirstCopies, Look
from mirrord.journal.records import _prefix_upper


class AlarmReadsMixin:
    """The alarm's questions; Journal provides the attributes below."""

    db: sqlite3.Connection
    routes: dict[str, tuple[str, ...]]
    first_copies: FirstCopies
    _barriers: _Barriers

    def overwrites(self, source: str, path: str, *,
                   current: Callable[[], Look | None] | None = None,
                   extends: Extends = lambda size, digest: False,
                   counted: Callable[[str, int, int, int], bool] = (
                       lambda target, size, mtime_ns, number: False)) -> bool:
        """Whether a target of `source` holds the file `path` (str, source-relative) that a
        write there would replace: not when that target's delete of it, or a removal of a
        directory above it, is recorded and not done yet (counted already; the rules:
        held_files.shipped_file), nor when what it has in flight there is the source file
        as it is now, or a put that has not read it yet, or what it has shipped there is
        the file as it is now, made by a write that destroyed nothing it held (its first
        copy, an append) (`current()`: the file's (size, mtime_ns, ctime_ns), None when
        absent; asked only when such a put or copy is known: mirrord.journal.first_copies),
        nor when the file now only extends the version it has there (`extends(size,
        sample)`: mirrord.appends), its shipped version made by a write whose overwrite
        of the version before the alarm counted already (`counted(target, size,
        mtime_ns, number)`: mirrord.alarm_replaced). A version a put landed and did not
        record (errors.ChangedWhileSent) is held as a shipped one is (first_copies.landed).
        May wait up to
        first_copies.LOOK_WAIT seconds for a worker reading the file. Raises
        sqlite3.Error from the reads."""
        key = os.fsencode(path)
        parent = key.rpartition(b"/")[0]
        routed = self.routes.get(source, ())
        firsts = self.first_copies
        own_shipped = own_landing = _never
        landed = lambda target: firsts.landed(target, source, path, None)  # noqa: E731
        if current is not None and firsts.any(source, path, routed):
            look = functools.cache(current)   # one stat, however many targets ask
            grown = functools.cache(extends)  # ... and one read of the file per version
            own_shipped = lambda target: firsts.own_shipped(  # noqa: E731
                target, source, path, look,
                lambda: read.shipped_meta(self.db, target, source, key), grown,
                functools.partial(counted, target))
            own_landing = lambda target: firsts.own_landing(target, source, path, look, grown)  # noqa: E731
            landed = lambda target: firsts.landed(  # noqa: E731
                target, source, path, look, grown, functools.partial(counted, target))
        return held_files.shipped_file(
            self.db, routed, source, key,
            renames=lambda target: self._barriers.any(target, source),
            above=lambda target: bool(parent) and bool(
                self._barriers.all_covering(target, source, parent, None)),
            own_shipped=own_shipped, own_landing=own_landing, landed=landed)

    def maybe_overwritten(self, source: str, paths: Iterable[str]) -> set[str]:
        """Of `paths` (source-relative files a batch writes, str), those overwrites() may
        answer True for: each a row of a target of `source` names (held_files.keys_named),
        or all of them while a rename or tree removal of one of those targets is pending
        (an old name may lead to any: old_names). overwrites() need not be asked for the
        rest: it is False for them. One statement per 300 paths where overwrites() is one
        or more each: a burst of new files asked one each, 15% of the daemon's main-thread
        time at 1,000 files/s live (py-spy). Raises sqlite3.Error."""
        routed = self.routes.get(source, ())
        by_key = {os.fsencode(p): p for p in paths}
        if any(self._barriers.any(target, source) for target in routed):
            return set(by_key.values())
        return {by_key[k] for k in held_files.keys_named(self.db, routed, source, by_key)}

    def held_versions(self, source: str, path: str) -> tuple:
        """What the targets of `source` hold at the file `path`, as comparable values: per
        target its `shipped` row (target, size, mtime_ns, token, the version number this
        process gave it: first_copies.number, 0 when not known), else a version a put
        landed and did not record (ops.landed: target, the base's size and mtime_ns,
        "landed", its number: first_copies.landed_base, UNKNOWN_ROW's when this process
        keeps nothing of it), else a put or rename in flight there
        (held_files.LANDING: target, row id, the seq it was claimed at; a put over a
        shipped or landed version replaces that one, so that one is what counts), sorted;
        () when none (mirrord.alarm_replaced). Raises sqlite3.Error."""
        routed = self.routes.get(source, ())
        if not routed:
            return ()
        key, marks = os.fsencode(path), ",".join("?" * len(routed))
        rows = self.db.execute(
            f"SELECT 0, target, size, mtime_ns, COALESCE(token, '') FROM shipped "
            f"WHERE target IN ({marks}) AND source = ? AND key = ? "
            f"UNION ALL SELECT 1, target, id, claimed, 'in flight' FROM ops WHERE target IN ({marks}) "
            f"AND source = ? AND path = ? AND {held_files.LANDING} "
            f"UNION ALL SELECT 2, target, 0, 0, '' FROM ops WHERE target IN ({marks}) "
            f"AND source = ? AND path = ? AND landed != 0",
            (*routed, source, key, *routed, source, key, *routed, source, key)).fetchall()
        shipped_rows = {r[1]: (*r[1:], self.first_copies.number(r[1], source, path, r[2], r[3]))
                        for r in rows if r[0] == 0}
        flying = {r[1]: tuple(r[1:]) for r in rows if r[0] == 1}
        landed = {r[1] for r in rows if r[0] == 2}
        held: list[tuple] = []
        for target in routed:
            if target in shipped_rows:
                held.append(shipped_rows[target])
            elif target in landed:
                base = self.first_copies.landed_base(target, source, path) or UNKNOWN_ROW
                held.append((target, base[0], base[1], "landed", base[2]))
            elif target in flying:
                held.append(flying[target])
        return tuple(sorted(held))

    def files_shipped_below(self, source: str, path: str) -> list[tuple[str, int, int]]:
        """(source-relative path, size, mtime_ns) of each file the source's first target
        holds below the directory `path` by its `shipped` rows and whose own delete, or a
        removal of a directory between it and `path`, is not queued (read; [] with no
        target). files_removed_with takes those queued deletes off already: counted
        again as gone elsewhere (mirrord.alarm_batch), an exchange's files below a
        removed directory were taken off twice, and `mv --exchange a b; rm -rf b` read
        while the exchange was in flight counted 1 for b's ten files (a run beside
        another test)."""
        routed = self.routes.get(source, ())
        if not routed:
            return []
        prefix = os.fsencode(path)
        deleted = {bytes(key) for (key,) in self.db.execute(
            "SELECT path FROM ops WHERE target = ? AND source = ? AND path > ? AND path < ? "
            "AND kind = 'delete'", (routed[0], source, prefix + b"/", _prefix_upper(prefix)))}
        return [(os.fsdecode(bytes(key)), size, mtime_ns) for key, size, mtime_ns, _t, _m
                in read.iter_shipped(self.db, routed[0], source, prefix)
                if not bytes(key).endswith(b"/")
                and deleted.isdisjoint(_self_and_ancestors(bytes(key)))]   # all below prefix

    def holds(self, source: str, path: str) -> bool:
        """Whether the source's first target holds a file at `path` (str, source-relative):
        a `shipped` row, or a put or rename of it in flight (held_files.held_at); False
        with no target (read)."""
        routed = self.routes.get(source, ())
        return bool(routed) and held_files.held_at(self.db, routed[0], source, os.fsencode(path))

    def files_removed_with(self, source: str, path: str, *, target: str | None = None) -> int:
        """Files below the directory `path` a tree removal takes off `target` (None: the
        source's first target) beyond the deletes already queued (0 when none are known)."""
        routed = self.routes.get(source, ())
        if target is None and not routed:
            return 0
        target = target or routed[0]
        return removed_files.files_below_unremoved(self.db, target, source, os.fsencode(path))


def _never(target: str) -> bool:
    return False
