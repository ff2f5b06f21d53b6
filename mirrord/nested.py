"""A tree removal or a directory move on a target never takes another source's area with it.

Several sources may feed one target, one's `dest` nested below another's (README,
`[source]` `dest`: A with `dest` empty, B with `dest = media/thumbs`; a reconcile spares
such areas: mirrord.reconcile.listings). A tree op of a target path P (SyncItem.tree:
`rm -rf media` at A, the catch-up's or a reconcile's delete of a recorded directory, a
start-up removal of mirrord.interrupted) removed everything below P, B's files included,
while B's `shipped` record still listed them, so nothing sent them again until a
reconcile: the mirror was not exact and B's data was gone from it. A directory move
(`mv media old` at A) carried B's area along to A's new name the same way.

So `sync` hands a batch to the target with each tree item whose path holds another
source's area replaced by the removal of everything below it except the chain of
directories leading to that area (found by Target.list), and `holds_area` tells the
shipper's move (mirrord.ship_moves) to make the new name and re-send what it holds
instead of renaming. `areas_below` is the one rule both use, and the start-up removals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from mirrord.config import SourceConfig
from mirrord.errors import NotFound, PermanentError, RetryableError
from mirrord.targets.base import Target
from mirrord.targets.failures import classify_oserror
from mirrord.targets.model import SyncItem, SyncResult

Sync = Callable[[Target, list[SyncItem]], list[SyncResult]]


def areas_below(sources: Iterable[SourceConfig], target: str, path: str, *,
                besides: str = "") -> list[str]:
    """The `dest` (target-relative, no '/' at the ends) of every source but `besides`
    routed to `target` whose dest is `path` or lies below it. An empty dest never counts:
    that source's area is the whole target, above every path."""
    path = path.strip("/")
    return [s.dest for s in sources if s.name != besides and target in s.targets
            and s.dest and _at_or_below(s.dest, path)]


def claimed_by(sources: Iterable[SourceConfig], target: str, source: SourceConfig,
               path: str) -> SourceConfig | None:
    """The other source whose area on `target` holds `path` (target-relative), a path of
    `source`'s: the innermost source routed there whose non-empty dest lies strictly
    above `path` and below `source`'s own dest. None when `path` is `source`'s own (the
    directories leading to an area are: a dest itself is not below itself).

    Why: an outer source's own files below an inner source's dest (A, dest empty, holding
    media/x.jpg; B with dest = media) were shipped by A and deleted by B's reconcile as
    extras, every pass, each saying "in sync" (a breaker); A's delete of media/y.jpg would
    have removed B's file of that name. The inner source owns its area: the shipper
    refuses A's changes there (a permanent error naming both), and A's pass reports them
    (reconcile.listings.own_entries)."""
    path, mine = path.strip("/"), source.dest.strip("/")
    owner: SourceConfig | None = None
    for other in sources:
        dest = other.dest.strip("/")
        if (other.name == source.name or target not in other.targets or not dest
                or dest == mine or not path.startswith(dest + "/")
                or (mine and not dest.startswith(mine + "/"))):
            continue
        if owner is None or len(dest) > len(owner.dest.strip("/")):
            owner = other
    return owner


def holds_area(sources: Iterable[SourceConfig], target: str, *paths: str) -> bool:
    """Whether another source's area on `target` lies at or below any of `paths`
    (target-relative): a directory renamed from or onto one would carry it along or
    replace it."""
    sources = list(sources)
    return any(areas_below(sources, target, p) for p in paths)


def sync(sync_fn: Sync, target: Target, items: Sequence[SyncItem],
         sources: Iterable[SourceConfig]) -> list[SyncResult]:
    """`sync_fn(target, items)` with each tree item whose path holds another source's
    area (areas_below) split into the removal of every entry beside the chain leading to
    it (a file as a delete, a directory as a tree removal) plus, for kind 'dir', the
    directory made again without `tree`; the area and its parents are left alone. One
    SyncResult per item of `items`, in order: the first error of its parts, or of its
    listing (RetryableError, PermanentError, NotFound, a classified OSError). A tree item
    of kind 'file' over an area fails with PermanentError, nothing done: a file there
    would replace that source's directories. Nothing is raised for target trouble."""
    sources = list(sources)
    parts: list[list[SyncItem] | SyncResult] = []
    split = False
    for item in items:
        areas = areas_below(sources, target.name, item.path) if item.tree else []
        parts.append(_split(target, item, areas) if areas else [item])
        split = split or bool(areas)
    if not split:
        return sync_fn(target, list(items))   # the usual case: nothing nested in the way
    flat = [sub for p in parts if isinstance(p, list) for sub in p]
    done = iter(sync_fn(target, flat) if flat else [])
    out: list[SyncResult] = []
    for item, p in zip(items, parts):
        if isinstance(p, SyncResult):
            out.append(p)
            continue
        results = [next(done) for _ in p]
        err = next((r.error for r in results if r.error is not None), None)
        made = next((r.entry for r in results if r.item.path == item.path), None)
        out.append(SyncResult(item, entry=made, error=err))
    return out


def _split(target: Target, item: SyncItem, areas: list[str]) -> list[SyncItem] | SyncResult:
    """The items that clear `item.path` around `areas`, or the item's failed result."""
    if item.kind == "file":
        return SyncResult(item, error=PermanentError(
            f"{item.path!r}: a file here would replace {areas[0]!r}, another source's area on "
            f"this target (its dest): not sent"))
    try:
        beside = _beside(target, item.path, areas)
    except (RetryableError, PermanentError, NotFound) as exc:
        return SyncResult(item, error=exc)
    except OSError as exc:
        return SyncResult(item, error=classify_oserror(exc, item.path))
    cut = len(item.path)
    subs = [SyncItem(path, "absent", tree=tree, when=item.when, source_root=item.source_root,
                     source_rel=item.source_rel + path[cut:] if item.source_rel else "")
            for path, tree in beside]
    if item.kind == "dir":
        subs.append(replace(item, tree=False))   # made again (its mode), never removed
    return subs


def _beside(target: Target, top: str, areas: list[str]) -> list[tuple[str, bool]]:
    """(path, tree) of each highest entry below `top` on `target` that neither lies in one
    of `areas` nor leads to one; `top` itself only when a file stands there (S3 keeps an
    object `media` beside the keys below `media/`). Raises what Target.list raises."""
    out: dict[str, bool] = {}
    for entry in target.list(top):
        if entry.path == top:
            if not entry.is_dir:
                out[top] = False
            continue
        if not entry.path.startswith(top + "/"):
            continue   # `media2/x` beside `media` on a target listing by key prefix
        cur = top
        for name in entry.path[len(top) + 1:].split("/"):
            cur = f"{cur}/{name}"
            if any(_at_or_below(cur, a) for a in areas):
                break  # inside an area: that source's
            if not any(_at_or_below(a, cur) for a in areas):
                out.setdefault(cur, cur != entry.path or entry.is_dir)
                break
    return list(out.items())


def _at_or_below(path: str, top: str) -> bool:
    """Whether target path `path` is `top` or lies below it ('' is the target root)."""
    return not top or path == top or path.startswith(top + "/")
