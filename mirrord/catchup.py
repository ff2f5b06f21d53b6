"""Catch-up: compare a source tree with what the state database says was shipped.

Run at start (changes made while the daemon was stopped, or lost in a crash
between an inotify event and its journal commit) and after an inotify
overflow. One streaming walk of the source is merged with one ordered read of
the `shipped` table per target; memory stays flat however large the tree, but for the
repairs that replace an entry of the other type, held until the deletes are decided
(mirrord.type_swaps: a file replaced by a directory holds that directory's repairs).
It only proposes changes; the daemon's main thread writes them to the journal.

It compares what the live stream ships: size, mtime_ns and mode (the mode
only where the target keeps it). Size or mtime differ: 'put' (the content may
have changed). Mode alone: 'attr' (only mode and mtime are sent). A directory
whose mode differs: 'mkdir' (which carries the mode). So a chmod made while
the daemon was stopped is repaired at start. A file whose inode changed after
`changed_after_ns` (the source's watched-through bound: mirrord.watched_through)
is a 'put' even where all three match: rewritten with its size kept and its mtime
put back while nothing watched.

A subtree catch-up (`subtree`) walks one directory and reads only the shipped
rows below it: cheap for a small directory the watcher cannot watch (it is
checked every few seconds), and it never proposes anything outside it.

A shipped row at or below a removal in flight (a claimed tree op or delete, whose
worker looked at the source before it changed back: journal.read.in_flight_removals)
is not trusted: what the source holds there is proposed again (a subtree's own
directory too) and waits for that removal (a directory exchanged with a symlink three
times: the last exchange's subtree check found rows the removal then took away).

Deletes are proposed only when the walk is trustworthy: never for paths below
a directory that could not be read, never when the source root is empty while
the database says files were shipped (an unmounted mount point looks empty), never
below a file system mounted below the root that went away or holds nothing (`refuse`).
Nor for a shipped path that an exclude pattern added since excludes: like a
reconcile, which never lists excluded paths on a target, it leaves it there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Callable, Iterator

from mirrord import journal
from mirrord.compare import against_shipped
from mirrord.config import SourceConfig
from mirrord.journal import Change
from mirrord.journal.holds import held_sources
from mirrord.journal.proposals import Seen
from mirrord.journal.read import in_flight_removals, removal_covers
from mirrord.logsetup import kv
from mirrord.merge import Cursor
from mirrord.treewalk import WalkErrors, entry_key, walk
from mirrord.type_swaps import TypeSwaps

log = logging.getLogger("mirrord.catchup")
CHUNK = 500


@dataclass
class CatchUpResult:
    source: str
    files: int = 0
    proposed: dict[str, int] = field(default_factory=dict)
    refused_deletes: int = 0
    capped: list[str] = field(default_factory=list)   # targets whose deletes the cap refused
    capped_paths: int = 0   # the most shipped paths one capped target lacked (not a sum)
    excluded: int = 0   # shipped paths the exclude patterns now exclude: left alone
    withheld: int = 0   # repairs not sent: they replace an entry whose delete is refused or held
    by_ctime: int = 0   # puts proposed only because the inode changed after the bound
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def catch_up(db_path: Path, source: SourceConfig, targets: list[str],
             emit: Callable[[list[Change]], None], *, stop: threading.Event | None = None,
             directories: dict[str, bool] | None = None, modes: dict[str, bool] | None = None,
             subtree: str = "", refuse: Callable[[str], str | None] | None = None,
             cap: tuple[int, float | None] | None = None,
             links: Callable[[str, os.stat_result], None] | None = None,
             changed_after_ns: int | None = None) -> CatchUpResult:
    """Propose (through `emit`, in chunks of Changes) what brings every target's shipped
    state up to the source. `directories` / `modes`: per target, whether it keeps empty
    directories / permission bits (Features.directories / keeps_mode; default: yes, and a
    mode never recorded is then not compared). `subtree` (a relative directory path):
    walk only source.path/subtree and compare only the shipped rows below it; deletes are
    proposed only below it. `refuse(path)`: why a delete of that path must wait (a
    file system mounted below the root that is gone: mirrord.submounts), or None; such
    deletes are counted as refused, not proposed. `cap`: [reconcile] (max_delete,
    max_delete_percent): a target whose deletes exceed it gets none (counted refused, one
    ERROR line), as a reconcile pass refuses; the daemon passes it for the catch-up at
    start and at a root's return, when the file system may be the wrong one (a breaker's
    empty tmpfs mounted in the root's place, one upload written there: the root was back
    and 2,200 files of the mirror went). A source that cannot be read raises nothing: it
    is recorded in the result and no delete is proposed for it. `links`: told of every
    file with more than one link the walk finds (treewalk.walk). `changed_after_ns` (ns
    since the epoch; None: not compared): a file whose ctime is later is put again
    though its size, mtime and mode match what was shipped (counted in `by_ctime`)."""
    started = time.monotonic()
    result = CatchUpResult(source.name)
    conn = journal.connect(db_path, readonly=True)
    prefix = subtree.strip("/").encode("utf-8", "surrogateescape")
    try:
        # read before `shipped`: an op acked in between is in `shipped` already
        removing = {t: in_flight_removals(conn, t, source.name) for t in targets}
        # held: the deletes it proposes wait in the journal, and a repair replacing what one
        # removes would not (a file's delete then a mkdir of its name is one plain mkdir row)
        held = source.name in held_sources(conn)
        shipped = {t: Cursor(journal.iter_shipped(conn, t, source.name, prefix), key=itemgetter(0))
                   for t in targets}
        had_shipped = any(s.head is not None for s in shipped.values())
        errors = WalkErrors([])
        batch: list[Change] = []
        deletes: dict[str, list[bytes]] = {t: [] for t in targets}
        # per target with directories: repairs replacing a shipped entry of the other type,
        # proposed only with its delete (mirrord.type_swaps)
        swaps: dict[str, TypeSwaps[Change]] = {t: TypeSwaps() for t in targets
                                                if (directories or {}).get(t, True)}

        def gone(t: str, keys: list[bytes]) -> None:
            deletes[t].extend(keys)
            if t in swaps:
                for k in keys:
                    swaps[t].extra(k, k.endswith(b"/"))
        matched: dict[str, int] = {t: 0 for t in targets}   # shipped rows still at the source

        trace = bool(prefix) and log.isEnabledFor(logging.DEBUG)
        if trace:   # [mirrord] log_level = debug: what a subtree check saw and proposed
            log.debug(kv(msg="subtree check", source=source.name, path=subtree,
                         removals_in_flight=sum(len(r) for r in removing.values())))

        def propose(change: Change) -> None:
            if trace:
                log.debug(kv(msg="subtree check proposes", source=source.name,
                             path=change.path, kind=change.kind, tree=int(change.tree),
                             target=",".join(change.targets or ())))
            batch.append(change)
            key = change.kind
            result.proposed[key] = result.proposed.get(key, 0) + 1
            if len(batch) >= CHUNK:
                emit(list(batch))
                batch.clear()

        if prefix and os.path.isdir(os.path.join(str(source.path), subtree.strip("/"))):
            for t in targets:   # the subtree's own directory, which the walk does not yield
                if removal_covers(removing[t], prefix):
                    propose(Change(source.name, subtree.strip("/"), "mkdir", time=time.time(),
                                   targets=(t,)))
        for entry in walk(str(source.path), excluded=source.excluded, errors=errors,
                          below=subtree.strip("/"), links=links):
            if stop is not None and stop.is_set():
                return result
            result.files += not entry.is_dir
            key = entry_key(entry)
            for t, rows in shipped.items():
                if rows.key is not None and rows.key < key:
                    gone(t, [r[0] for r in rows.take_before(key)])
                for change in swaps[t].passed(key) if t in swaps else ():
                    propose(change)
                row = rows.take_equal(key)
                matched[t] += row is not None
                if row is not None and removal_covers(removing[t], key):
                    row = None      # a removal in flight may take it: sent again after it
                if entry.is_dir and not (directories or {}).get(t, True):
                    continue
                keeps_mode = (modes or {}).get(t)
                kind = against_shipped(entry, row, keeps_mode=keeps_mode)
                if (kind is None and changed_after_ns is not None and not entry.is_dir
                        and entry.ctime_ns > changed_after_ns):
                    kind = "put"    # changed while nothing watched, size and mtime kept
                    result.by_ctime += 1
                if kind is None:
                    continue
                # what the walk saw: a put in flight that ships it settles this proposal
                seen = None if entry.is_dir else Seen(
                    entry.size, entry.mtime_ns, None if keeps_mode is False else entry.mode,
                    entry.ctime_ns)
                change = Change(source.name, entry.path, kind, size=entry.size,
                                time=time.time(), targets=(t,), seen=seen)
                if row is None and t in swaps and swaps[t].missing(key, change, entry.is_dir):
                    continue
                propose(change)
        for t, rows in shipped.items():
            # everything left was shipped but is no longer at the source
            left = []
            while rows:
                left.append(rows.advance()[0])
            gone(t, left)
            for change in swaps[t].rest() if t in swaps else ():
                propose(change)
        result.unreadable = list(errors.unreadable)
        # an unmounted source root looks empty; a subtree that is empty was emptied (its
        # root missing or unreadable is caught by the unreadable rule below)
        removed: dict[str, set[bytes]] = {t: set() for t in targets}   # deletes proposed
        if result.files == 0 and had_shipped and not prefix:
            result.refused_deletes = sum(len(d) for d in deletes.values())
            if result.refused_deletes:  # nothing to refuse (e.g. only directories): no alarm
                log.error(kv(msg="source root is empty but shipped paths are recorded: "
                                 "refusing to delete (unmounted?)", source=source.name,
                             path=str(source.path), refused=result.refused_deletes))
        else:
            why_refused = None
            for t, keys in deletes.items():
                if cap is not None and _over(source, t, len(keys), len(keys) + matched[t], cap):
                    result.refused_deletes += len(keys)
                    result.capped.append(t)
                    result.capped_paths = max(result.capped_paths, len(keys))
                    continue
                for key in keys:
                    if _below_unreadable(key, errors):
                        result.refused_deletes += 1
                        continue
                    path = key.rstrip(b"/").decode("utf-8", "surrogateescape")
                    why = refuse(path) if refuse is not None else None
                    if why is not None:   # below a mount that went away: no user's delete
                        result.refused_deletes += 1
                        why_refused = why_refused or why
                        continue
                    if source.excluded(path, is_dir=key.endswith(b"/")):
                        # excluded since it was shipped: not ours any more, left on the
                        # target as reconcile leaves it (its listings skip excluded paths);
                        # a file's put over it goes, as the live stream's would
                        result.excluded += 1
                        removed[t].add(key)
                        continue
                    removed[t].add(key)
                    propose(Change(source.name, path, "delete", tree=key.endswith(b"/"),
                                   time=time.time(), targets=(t,), proposed=True))
            if why_refused is not None:
                log.error(kv(msg="deletes refused: " + why_refused, source=source.name,
                             kept=result.refused_deletes))
        for t, sw in swaps.items():
            sent, kept = sw.release(set() if held else removed[t])
            for change in sent:
                propose(change)
            if kept:
                result.withheld += len(kept)
                log.error(kv(msg="repairs not sent: each would replace what the target holds "
                                 "at its path (a directory and what lies below it, or a "
                                 "file), whose removal is refused or held", source=source.name,
                             target=t, kept=len(kept), first=kept[0].path))
        if batch:
            emit(list(batch))
    finally:
        conn.close()
        result.seconds = time.monotonic() - started
    return result


def _over(source: SourceConfig, target: str, count: int, entries: int,
          cap: tuple) -> bool:
    """Whether `count` deletes of `entries` shipped paths exceed `cap` (logged when so):
    (max_delete, max_delete_percent), or with a third item, a text saying why any delete
    at all is refused (the root on another file system: mirrord.daemon_roots)."""
    from mirrord.reconcile.deletes import over_cap   # not at import: reconcile imports this

    advice = f"check the source, then mirrord resume-deletes --source {source.name}"
    if len(cap) > 2 and cap[2]:
        why = (f"refusing to delete {count} entries on target {target!r} (source "
               f"{source.name!r}): the source root {cap[2]} ({advice})") if count else None
    else:
        why = over_cap(count, entries, max_delete=cap[0], max_delete_percent=cap[1],
                       where=f"target {target!r} (source {source.name!r})", advice=advice)
    if why is not None:
        log.error(kv(msg="the comparison found shipped paths gone: " + why, source=source.name,
                     target=target, gone=count))
    return why is not None


def _below_unreadable(key: bytes, errors: WalkErrors) -> bool:
    for where, _why in errors.unreadable:
        if where == ".":
            return True
        prefix = where.encode("utf-8", "surrogateescape") + b"/"
        if key.startswith(prefix) or key == prefix:
            return True
    return False


def resend_subtree(source: SourceConfig, rel: str, targets: tuple[str, ...]) -> Iterator[list[Change]]:
    """Chunks of Changes that send the whole directory `rel` again to `targets`: what an
    outcome's rescan asks for (a move that could not be kept as a move, a tree delete
    that found a directory again). Used by the daemon's scanner and by the reconcile
    command alike, so both honour the request."""
    batch: list[Change] = []
    root = os.path.join(str(source.path), rel)
    for entry in walk(root, prefix=rel, excluded=source.excluded):
        kind = "mkdir" if entry.is_dir else "put"
        batch.append(Change(source.name, entry.path, kind, size=entry.size, time=time.time(),
                            targets=targets))
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
