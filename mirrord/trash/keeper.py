"""What to keep before a batch reaches a target with `keep_deleted` on (the keep-before-delete
rule), and the per-target policy that turns it on.

The shipper is the one place every delete and overwrite goes through (live stream,
catch-up, reconcile repairs and deletes, moves), so it asks this module, just before
Target.sync(), to keep what each item would destroy (Target.keep_many: one round trip on
rsync). An item whose keep failed is not synced: its result is that error, so the row is
retried and nothing is deleted or overwritten unkept. The stamp is derived from the
change's journal event time (SyncItem.when), so a retry after a kill -9 between keeping
and deleting names the same trash place and the target keeps nothing twice
(mirrord.trash.model). Targets without the option pay nothing: the shipper never calls in.

A target that keeps by condition (Features.keep_by_condition: S3 in 'copy' mode) is asked
nothing before a plain put: the item goes to sync() marked with its stamp
(SyncItem.keep_stamp) and the put itself keeps what it finds in its way (a put that
succeeds on "nothing there" has nothing to keep). On S3 that saved a HEAD and a listing per
new file: 3.6 times the wall time of a burst of new files with keep_deleted on (issue 17).
The rsync target keeps by condition too, with the item's parents (Features.
keeps_parents_in_put), in the rsync run's own ssh session: no keep round trip per batch.

A rename the journal could not keep as a move is a delete of the old name plus a put of
the new one (journal enqueue_move's fallback); the delete carries the new name
(SyncItem.moved_to) and runs after the put (it waits for it in the journal). Keeping the
old name there listed mirrord's own work as a user's loss, and `undelete` brought back a
duplicate. lives_on() is the one rule for it, asked here for every batch (live stream,
catch-up, reconcile all ship through Shipper._sync): nothing is kept only when the
target itself holds, at the new name, the version it holds at the old one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from mirrord.config import Config, TargetConfig
from mirrord.errors import ConfigError, ConfigProblem
from mirrord.targets.base import Target
from mirrord.targets.model import Entry, SyncItem
from mirrord.targets.mtime import exact_ns
from mirrord.trash.model import stamp_of
from mirrord.treewalk import file_digest


@dataclass(frozen=True)
class KeepPolicy:
    """One target's `keep_deleted`: `window` seconds (> 0), and the size cap: `cap_bytes`,
    or `cap_percent` of the target's mirrored bytes when cap_bytes is None."""

    window: float
    cap_bytes: int | None = None
    cap_percent: float | None = 20.0

    def cap(self, mirrored_bytes: int) -> int | None:
        """The cap in bytes for a target mirroring `mirrored_bytes` bytes (None: no cap)."""
        if self.cap_bytes is not None:
            return self.cap_bytes
        if self.cap_percent is None or mirrored_bytes <= 0:
            return None   # nothing mirrored (or not known): a percentage of it would purge all
        return int(mirrored_bytes * self.cap_percent / 100)

    @classmethod
    def of(cls, tcfg: TargetConfig) -> "KeepPolicy | None":
        """The policy of a [target:NAME] section, None when keep_deleted is off."""
        if tcfg.keep_deleted <= 0:
            return None
        return cls(tcfg.keep_deleted, tcfg.keep_deleted_max, tcfg.keep_deleted_max_percent)


def policies(cfg: Config, targets: Mapping[str, Target]) -> dict[str, KeepPolicy]:
    """The policy of each of `targets` that keeps. ConfigError naming [target:NAME]
    keep_deleted when such a target's type does not implement Target.keep (checked on the
    created object: the config cannot see which class a type maps to)."""
    out: dict[str, KeepPolicy] = {}
    problems: list[ConfigProblem] = []
    for name, target in targets.items():
        policy = KeepPolicy.of(cfg.targets[name])
        if policy is None:
            continue
        if type(target).keep is Target.keep:
            problems.append(ConfigProblem(str(cfg.path), f"target:{name}", "keep_deleted",
                                          f"a {target.type} target cannot keep deleted files"))
        out[name] = policy
    if problems:
        raise ConfigError(problems)
    return out


def coming(item: SyncItem) -> str | None:
    """What `item.path` becomes on the target ('file', 'dir', 'absent'), as Target.keep asks
    it; None when nothing can be destroyed (only mode and mtime change: meta_only).

    A tree item first removes everything at and below the path (SyncItem.tree), so unless
    a file comes (keep then sees a directory there and keeps all of it, or a file and
    links it), it is 'absent': 'dir' would keep nothing of a directory standing there,
    whose contents the tree removal destroys."""
    if item.kind == "file":
        return None if item.meta_only else "file"
    if item.kind == "dir" and not item.tree:
        return "dir"
    return "absent"


def stamp_for(when: float) -> str:
    """The trash stamp of a change at `when` (seconds); a row with no event time (0, never
    from the journal) gets now, which still keeps, only not idempotently."""
    return stamp_of(when if when > 0 else time.time())


def prepare(target: Target,
            items: Sequence[SyncItem]) -> tuple[list[SyncItem], list[Exception | None]]:
    """The items as Target.sync() should get them, and one error (or None) per item, in
    order: keep_items() for every item but the plain puts a target keeps by condition, which
    come back marked with their stamp instead (SyncItem.keep_stamp). An item with an error
    must not be synced. Never raises for target trouble."""
    marked = [_hinted(target, item) for item in items]
    marked = [replace(item, keep_stamp=stamp_for(item.when)) if by_condition(target, item)
              else item for item in marked]
    return marked, keep_items(target, marked)


def _hinted(target: Target, item: SyncItem) -> SyncItem:
    """`item` with its moved_to hint judged: a delete marked with lives_on() when the
    target holds its bytes at the new name too. A put keeps its hint even when nothing
    stands at its path: a move in flight may have taken its bytes to the other name and
    kept what stood there (keep_move_dst: `mv --exchange a c` with the move a -> c claimed
    before the rest was read kept c's old bytes, which the put brings to a, for good:
    tests/integration/test_exchange_then_proposals_keep_nothing.py). mirrord.trash.swaps
    then looks at both names (`mv log log.1; touch log` costs it two stats and two short
    trash listings, and finds nothing)."""
    if item.moved_to and item.kind == "absent":
        entry = lives_on(target, item)
        return item if entry is None else replace(item, lives_on=entry)
    return item


def lives_on(target: Target, item: SyncItem) -> Entry | None:
    """The version at `item.path` (the target's Entry) when a delete of it destroys no
    bytes because the target holds that very version at `item.moved_to` too; None when it
    must be kept as today: not a plain delete with a new name, anything not a file at
    either name, another size or mtime (ns), another ETag where the target has one (S3:
    the MD5 of the bytes for a single-part put), where it has none another SHA-256
    (Target.checksum: local, rsync), or any error while looking (unsure).

    Why comparing the target with itself, not with the source: only the target proves the
    bytes are still there. The journal runs such a delete after the put of the new name
    (enqueue_move), so the put normally made it; when it has not (a crash between them,
    the put failing, the new name rewritten with other bytes or removed at the source
    first), the two differ and the old name is kept, as before: a kill -9 at any point
    leaves either a kept copy or the bytes at the new name, never neither. A later delete
    or overwrite of the new name is a user's loss of it, and keeps it then. Size and exact
    mtime are the mirror's own test of "the same version" (compare.py); the mode is
    not data: a chmod before the rename changes nothing here."""
    if not item.moved_to or item.kind != "absent" or item.tree or item.moved_to == item.path:
        return None
    try:
        old = target.stat(item.path)
        new = target.stat(item.moved_to) if old is not None and not old.is_dir else None
    except Exception:  # noqa: BLE001 - unsure: keep, and keep_many reports the trouble
        return None
    if new is None or new.is_dir or new.size != old.size:
        return None
    if exact_ns(new.mtime, new.mtime_ns) != exact_ns(old.mtime, old.mtime_ns):
        return None
    if (old.token is None) != (new.token is None) or old.token != new.token:
        return None
    if old.token is None and not _same_checksum(target, item.path, item.moved_to):
        return None
    return old


def _same_checksum(target: Target, a: str, b: str) -> bool:
    """Whether the target's files at `a` and `b` have one SHA-256 (Target.checksum); False
    when either has none or looking fails (unsure: keep). Where the target has no ETag,
    size and mtime alone are no proof: a new name rewritten with `touch -r` before its put
    ran holds other bytes of the same size and mtime (a breaker's `touch -r` shape)."""
    try:
        digest = target.checksum(a)
        return digest is not None and digest == target.checksum(b)
    except Exception:  # noqa: BLE001 - unsure: keep
        return False


def by_condition(target: Target, item: SyncItem) -> bool:
    """Whether the put of `item` keeps what it overwrites itself (Features.keep_by_condition):
    a whole file, not a tree item (its removal of everything below is kept beforehand)."""
    return (target.features.keep_by_condition and item.kind == "file" and not item.meta_only
            and not item.tree)


def keep_items(target: Target, items: Sequence[SyncItem]) -> list[Exception | None]:
    """Keep what each item would destroy; one error (or None) per item, in order. Items that
    need no keep are not sent to the target. Never raises for target trouble.

    On targets with directories a put or mkdir also creates the item's missing parents, and
    a FILE standing where a parent must go is removed on the way (LocalTarget's confined
    parent walk, rsync's --mkpath): so each parent is asked too, coming 'dir' (a file there
    is kept as 'deleted', a directory costs one lstat and keeps nothing), once per batch,
    shallowest first. An item whose parent could not be kept fails with that error. (Bug
    found by trying it: `rm d; mkdir d; echo > d/z` shipped the put of d/z first and the
    file d vanished from the mirror unkept.) An item marked with a keep_stamp (prepare())
    is not kept here, only its parents are, unless the target keeps those in the put too
    (Features.keeps_parents_in_put): then nothing is asked for it here."""
    # a marked item's put makes the "already holds it" test itself (targets keep_by_condition)
    wanted = [(i, item) for i, item in enumerate(items) if coming(item) is not None
              and item.lives_on is None
              and (item.keep_stamp is not None or not _holds_already(target, item))]
    errors: list[Exception | None] = [None] * len(items)
    parents: dict[str, str] = {}     # parent path -> stamp (of the first item needing it)
    if target.features.directories:
        for _, item in wanted:
            if coming(item) != "absent" and not _parents_in_put(target, item):
                stamp = item.keep_stamp or stamp_for(item.when)   # once per item, not per parent
                for parent in _parents(item.path):
                    parents.setdefault(parent, stamp)
    order = sorted(parents, key=lambda p: (p.count("/"), p))
    here = [(i, item) for i, item in wanted if item.keep_stamp is None]   # the rest keep in put
    requests = [(p, parents[p], "dir") for p in order]
    requests += [(item.path, stamp_for(item.when), coming(item) or "") for _, item in here]
    if not requests:
        return errors
    try:
        answers = target.keep_many(requests)
    except Exception as exc:  # noqa: BLE001 - a target bug must not delete unkept: fail the batch
        answers = [exc] * len(requests)
    failed_parent = {p: err for p, err in zip(order, answers) if err is not None}
    own = dict(zip((i for i, _ in here), answers[len(order):]))
    for i, item in wanted:
        err = own.get(i)
        if err is None and failed_parent and coming(item) != "absent":
            err = next((failed_parent[p] for p in _parents(item.path) if p in failed_parent), None)
        errors[i] = err
    return errors


def _parents_in_put(target: Target, item: SyncItem) -> bool:
    """Whether the target's put of the marked `item` keeps its parents itself
    (Features.keeps_parents_in_put: rsync, in the run's own ssh session)."""
    return item.keep_stamp is not None and target.features.keeps_parents_in_put


def _holds_already(target: Target, item: SyncItem) -> bool:
    """Whether a put would write the bytes the target already holds: the same size and
    bytes (Target.checksum against the SHA-256 of the source file `item.local`), whatever
    the mtime or mode the put sets: nothing is destroyed, so nothing is kept. Size and
    mtime alone are no proof: a file rewritten in place with its length kept and its
    mtime put back was replaced unkept (a review, helper-155). Nor is the mtime asked:
    the same bytes under a new mtime (coreutils touch seen live as a write) were kept as
    a duplicate (a trial, helper-161; the targets' own keep in put, local_trash.
    _keep_in_put, s3/conditional._holds and rsync's KEEP_BODY, ask the same). Asked only
    where stat() costs a syscall, not a round trip (Features.cheap_stat), and the bytes
    only when the sizes match. A second put of one version happens when a pass lists the
    target while the first is in flight; without this the trash got a copy of the new
    version as 'overwritten'. False (keep) on any error while looking."""
    if item.kind != "file" or item.meta_only or item.tree or not target.features.cheap_stat:
        return False
    try:
        entry = target.stat(item.path)
        if entry is None or entry.is_dir or entry.size != item.size:
            return False
        return target.checksum(item.path) == file_digest(item.local)
    except Exception:  # noqa: BLE001 - keep() will meet the same trouble and report it
        return False


def _parents(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b']."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]


def keep_move_dst(target: Target, dst: str, *, is_dir: bool, when: float) -> None:
    """Before Target.move(src, dst): keep what `dst` holds, which the move replaces. A
    directory moved there replaces a whole tree (local: the old dst is removed first), so
    it asks 'absent' (everything below is kept), a file 'file'. Raises what keep raises."""
    target.keep(dst, stamp=stamp_for(when), coming="absent" if is_dir else "file")
