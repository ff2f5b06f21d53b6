"""move() on a versioned bucket: a rename leaves no version of the old name behind.

A move on S3 is a CopyObject to the new key, then a delete of the old key (copy.py).
With bucket versioning the delete only puts a delete marker on the old key: the
version it hid stays as a noncurrent version, which the trash (versioning.noncurrent)
could not tell from a user's delete: `mirrord trash` listed every renamed file as
'deleted' and `undelete` offered the name the user renamed away (its bytes a second
time), and retention counted it against keep_deleted_max. On the other targets a
rename kept as a move keeps nothing (README, "What is kept where").

So each key is copied by its VersionId (the very bytes that are deleted), the delete
markers are put, and only then each copied version is deleted by its VersionId (a
noncurrent version by then: deleting it never makes an older one current again, S3
User Guide, "Deleting object versions"). The version is deleted, not marked: a mark
would need a ledger the trash listing and retention both read, and the bytes would be
stored twice until retention purged them.

Crash safety (kill -9 at any point; the journal runs the move again at the next start):
- before the copies: done again from the start;
- between the copies and the delete markers: the old keys are still current; a
  destination key already holding the same bytes and metadata (ETag, size, user
  metadata) is not copied again, so it gets no second version;
- between the delete markers and the version deletes: the old keys are gone, so the
  run finds the versions right below their delete markers whose bytes (ETag, size)
  the destination holds, deletes them and counts the move as done. Until then they
  are listed as 'deleted': an extra kept version, never a lost one. A version not
  recognised so stays listed until retention purges it (keep_deleted).
A version-delete refused or failing is logged and left listed, like drop_self_copied.

SeaweedFS answers ListObjectVersions without honouring EncodingType=url (which botocore
asks for, and AWS honours), and its XML encoder writes a character XML cannot carry
(a C0 control, keys.xml_safe) as U+FFFD: such a key is listed under a name that does not
exist, and copying it raised NotFound, so the directory move fell back to a re-send and
left every old key behind. When a listed key holds U+FFFD, the current keys are taken
from ListObjectsV2 instead (URL-encoded, exact), each one's version from a HEAD.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mirrord.errors import NotFound, PermanentError
from mirrord.logsetup import kv
from mirrord.targets.s3 import deletes
from mirrord.targets.s3.errors import is_not_found, shown
from mirrord.targets.s3.keys import MAX_KEY_BYTES
from mirrord.targets.s3.listing import pages
from mirrord.targets.s3.versioning import _version_pages

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target

log = logging.getLogger("mirrord.targets.s3")


@dataclass(frozen=True)
class Obj:
    """One version of an old key: the current one to move, or one a crash left below a
    delete marker. `etag` as S3 lists it (quoted)."""
    key: str
    size: int
    version: str
    etag: str


@dataclass(frozen=True)
class Plan:
    """What a move does: `copies` (old key, new key, size, VersionId), the delete markers
    to put (`old_keys`), then the versions to delete (`moved`); `file`: the object at the
    old name moves (False: the keys below it, a directory)."""
    copies: list[tuple[str, str, int, str | None]]
    old_keys: list[str]
    moved: list[Obj]
    file: bool = True


def plan(t: S3Target, src: str, skey: str, dst: str, dkey: str) -> Plan:
    """The Plan of copy.move on a versioned bucket (module docstring). NotFound when nothing
    is at `src` or below it and no earlier try of this move is left to finish; errors
    classified (errors.classify); PermanentError for a new key longer than S3 allows."""
    head = t._head(src, skey)
    if head is not None:
        # a file: only its own key moves; keys below `src/` beside it belong to a directory
        # made at the old name since (trash.keep keeps only the object in that case too)
        current = [Obj(skey, head["ContentLength"], head.get("VersionId") or "",
                       head.get("ETag") or "")]
        left: list[Obj] = []
    else:
        current, left = _versions(t, src, skey + "/")
        if not current:
            left += _versions(t, src, skey, only=skey)[1]
    file = head is not None or any(o.key == skey for o in left)
    there = _at_dst(t, src, dkey, file=file)
    new = {o.key: _new_key(t, src, dst, skey, dkey, o.key) for o in current + left}
    finished = [o for o in left if there.get(new[o.key]) == (o.etag, o.size)]
    if not current and not finished:
        raise NotFound(f"{shown(src)} is not on {t.describe()}")
    copies = [(o.key, new[o.key], o.size, o.version or None) for o in current
              if not _copied(t, src, o, new[o.key], there)]
    return Plan(copies, [o.key for o in current],
                [o for o in current if o.version] + finished, file)


def _new_key(t: S3Target, src: str, dst: str, skey: str, dkey: str, key: str) -> str:
    new = dkey + key[len(skey):]
    if len(new.encode("utf-8")) > MAX_KEY_BYTES:
        raise PermanentError(f"{t.describe()}: move {shown(src)} -> {shown(dst)}: "
                             f"{shown(new)} would be longer than {MAX_KEY_BYTES} bytes")
    return new


def _versions(t: S3Target, src: str, prefix: str, *,
              only: str | None = None) -> tuple[list[Obj], list[Obj]]:
    """ListObjectVersions of `prefix` (only the key `only`, if given): the current version
    of each key, and the newest version below each key's newest delete markers."""
    entries: dict[str, list[tuple[Any, ...]]] = {}
    for page in _version_pages(t, Prefix=prefix):
        for kind, field in ((1, "Versions"), (0, "DeleteMarkers")):
            for v in page.get(field, ()):
                if only is None or v["Key"] == only:
                    entries.setdefault(v["Key"], []).append(
                        (v["LastModified"], v.get("IsLatest", False), kind, v))
        if only is not None and any(v["Key"] > only for f in ("Versions", "DeleteMarkers")
                                    for v in page.get(f, ())):
            break   # keys are listed in order: `only` is behind us
    current: list[Obj] = []
    left: list[Obj] = []
    relisted = only is None and any("\ufffd" in key for key in entries)
    if relisted:
        current = _listed_current(t, src, prefix)
    for key, found in entries.items():
        # newest first; within LastModified's whole second the latest first, then a marker
        found.sort(key=lambda e: (-e[0].timestamp(), not e[1], e[2]))
        if not found[0][1]:
            continue   # the latest is on a page we did not read: judge nothing
        if found[0][2] == 1:
            if not relisted:
                current.append(_obj(key, found[0][3]))
            continue
        # below the newest markers (a delete of the old name after the move adds one)
        below = next((e for e in found if e[2] == 1), None)
        if below is not None:
            left.append(_obj(key, below[3]))
    return current, left


def _listed_current(t: S3Target, src: str, prefix: str) -> list[Obj]:
    """The current version of each key below `prefix`, named exactly: keys from
    ListObjectsV2, VersionId from a HEAD of each (module docstring: SeaweedFS's version
    listing). A key gone since the listing is left out; errors classified."""
    out: list[Obj] = []
    for page in pages(t, "move", Prefix=prefix):
        for o in page.get("Contents", ()):
            head = t._head(src, o["Key"])
            if head is not None:
                out.append(Obj(o["Key"], head["ContentLength"], head.get("VersionId") or "",
                               head.get("ETag") or ""))
    return out


def _obj(key: str, v: dict[str, Any]) -> Obj:
    return Obj(key, v.get("Size", 0), v.get("VersionId") or "", v.get("ETag") or "")


def _at_dst(t: S3Target, src: str, dkey: str, *, file: bool) -> dict[str, tuple[str, int]]:
    """{key: (ETag, size)} of what the destination holds now: `dkey` for a file, the keys
    below `dkey/` for a directory (one listing; nothing there on a first try)."""
    if file:
        head = t._head(src, dkey)
        return {} if head is None else {dkey: (head.get("ETag") or "", head["ContentLength"])}
    return {o["Key"]: (o.get("ETag") or "", o["Size"])
            for page in pages(t, "move", Prefix=dkey + "/") for o in page.get("Contents", ())}


def _copied(t: S3Target, src: str, o: Obj, new: str,
            there: dict[str, tuple[str, int]]) -> bool:
    """Whether `new` already holds `o` (a try before a crash copied it): same ETag and size,
    and the same user metadata (mtime, mode, sha256), read by a HEAD of each."""
    if not o.etag or there.get(new) != (o.etag, o.size):
        return False
    have = t._head(src, new)
    try:
        old = t.client.head_object(Bucket=t.bucket, Key=o.key, VersionId=o.version)
    except Exception as exc:  # noqa: BLE001 - a vanished version: copy, which says so
        if is_not_found(exc):
            return False
        raise t._error(exc, "move", src) from None
    return have is not None and have.get("Metadata") == old.get("Metadata")


def drop(t: S3Target, src: str, moved: list[Obj]) -> None:
    """Delete the moved-away versions, now noncurrent below their delete markers. Best
    effort: a failure leaves them listed as kept versions (logged at warning), never fails
    the move, which is done."""
    if not moved:
        return
    try:
        deletes.delete_objects(t, "move", [{"Key": o.key, "VersionId": o.version}
                                           for o in moved], src)
    except Exception as exc:  # noqa: BLE001 - best effort, logged
        log.warning(kv(msg="cannot delete the versions a move left at the old name; they "
                           "stay listed in the trash until retention purges them",
                       target=t.name, path=src, versions=len(moved), error=exc))
