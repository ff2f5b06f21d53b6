"""The S3 put that keeps what it overwrites (keep_deleted in 'copy' trash mode) only when
something is there: SyncItem.keep_stamp, Features.keep_by_condition.

Why: asking before every put (a HEAD, and when nothing was there a listing of `path/`)
cost two requests per NEW file, where nothing is kept: a burst of 500 new 4 KiB files
took 3.6 times as long with keep_deleted on (issue 17, README "What keeping costs").

How (S3 conditional writes, AWS S3 User Guide "How to prevent object overwrites with
conditional writes", Aug 2024; SeaweedFS 4.x honours both conditions on PutObject):

1. PutObject with `If-None-Match: *`. Stored: nothing stood there, nothing to keep.
2. 412 PreconditionFailed: an object stands there. HEAD it, keep it as
   'overwritten' under the stamp (trash.keep_overwritten: a conditional CopyObject,
   so a retry of the same change keeps nothing twice), then PutObject with
   `If-Match: <the ETag the HEAD saw>`: exactly the version kept is replaced.
   When the HEAD finds no object, the put is sent without condition: the object was
   deleted meanwhile, or (SeaweedFS 4.48, found by testing) the key names a filer
   directory: other keys below `path/`, or an empty directory their deletion left,
   make If-None-Match: * fail with 412 while HEAD answers 404; asking again would
   only loop. Nothing is overwritten then: no object stands there.
3. 412 to If-Match: the object changed between the HEAD and the put, which only
   another writer can do (mirrord never works on one path twice at once): back to
   2, at most TRIES puts, then RetryableError (the row is retried later).

On a versioned bucket (bucket versioning Enabled) the same put runs with nothing copied
(trash.keep_overwritten keeps nothing there: the replaced version is the kept one), and
a replaced object that held the very bytes sent (a re-send, a touch) is deleted after
the put.

"The very bytes" (_holds): the same size and the same sha256 metadata as the body's,
whatever the mtime or mode (the put sets the new ones, and destroys nothing). Asking
the same mtime too kept a duplicate of every file coreutils `touch` rewrote live (its
open for writing reads as a write: the same bytes were sent under a new mtime; a trial,
helper-161). The sha256 is in the HEAD already: the comparison costs no request.

A keep that fails raises its error before any put replaced anything: the item fails,
the old object stays. Nothing here lists `path/`: a put destroys no other key.

Large files (s3transfer: one PutObject from 8 MiB, multipart from multipart_threshold)
keep first instead (keep_before): s3transfer 0.19 passes neither IfNoneMatch nor IfMatch
to PutObject or CompleteMultipartUpload (not in ALLOWED_UPLOAD_ARGS), re-implementing
its multipart upload to send them is not worth it, and one HEAD is nothing next to
sending 8 MiB or more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from mirrord.errors import RetryableError
from mirrord.targets.model import Entry
from mirrord.targets.s3 import trash, versioning
from mirrord.targets.s3.errors import PreconditionFailed, shown
from mirrord.targets.s3.keys import head_entry
from mirrord.trash.model import OVERWRITTEN

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target

TRIES = 3            # conditional puts per call; more only while another writer races us
NOTHING_THERE = {"IfNoneMatch": "*"}


def put_keeping(t: "S3Target", path: str, key: str, stamp: str,
                send: Callable[[dict[str, str]], Entry], *, version: tuple[int, int],
                sha256: str = "") -> Entry:
    """Put `path` (at `key`) by `send(condition)`, keeping what it replaces under `stamp`
    first (see the module docstring). `send` takes put_object keyword arguments, the
    condition (IfNoneMatch / IfMatch), and raises PreconditionFailed on a 412. `version`
    is (size in bytes, mtime in ns) of what is sent and `sha256` its body's: an object
    that already holds these bytes (_holds: size and sha256, any mtime or mode) is
    replaced without being kept (nothing is destroyed; a second send of one version, e.g.
    a catch-up after a restart, or a touch, kept a useless copy that counted against
    keep_deleted_max). On a versioned bucket that replaced version is deleted after the
    put (same_version). Returns what send
    returns; raises what the HEAD, the keep or send raise (RetryableError /
    PermanentError), and RetryableError after TRIES failed conditions."""
    trash.check_stamp(t, stamp)     # a bad stamp fails before anything is sent
    condition = NOTHING_THERE
    resent: str | None = None
    for _ in range(TRIES):
        try:
            entry = send(condition)
        except PreconditionFailed:
            pass
        else:
            if resent:
                versioning.drop_resent(t, key, resent)
            return entry
        head = t._head(path, key)
        if head is None:            # no object (see 2. above): nothing to keep
            condition, resent = {}, None
            continue
        if not _holds(path, head, version, sha256):
            trash.keep_overwritten(t, path, key, stamp, head)
        resent = same_version(t, path, head, version, sha256)
        condition = {"IfMatch": head["ETag"]}
    raise RetryableError(f"{t.describe()}: put {shown(path)}: the object changed while it "
                         f"was being kept, {TRIES} times (another writer?)")


def keep_before(t: "S3Target", path: str, key: str, stamp: str, *,
                version: tuple[int, int], sha256: str = "") -> tuple[str | None, str | None]:
    """Keep what stands at `key` before an unconditional put of a large file (see the
    module docstring): one HEAD, and a copy of whatever is there, even the very bytes
    sent (`version`, `sha256`: see put_keeping). A large put reads the file twice, for its sha256
    and for the body: written in place between the two, the body is other bytes under
    the old size and mtime, and a re-send that kept nothing left the old bytes nowhere (a
    review, helper-139). Returns (same_version's answer: the VersionId to delete once
    the put is done, or None; the trash key of a copy of `version` itself made now, to
    delete once the put is done, or None), both only to be dropped when the file did not
    change while it was sent (upload._put_file). Raises like keep()."""
    trash.check_stamp(t, stamp)
    head = t._head(path, key)
    if head is None:
        return None, None
    copied = trash.keep_overwritten(t, path, key, stamp, head)
    spare = (trash.trash_key(t, stamp, OVERWRITTEN, path)
             if copied and _holds(path, head, version, sha256) else None)
    return same_version(t, path, head, version, sha256), spare


def same_version(t: S3Target, path: str, head: dict, version: tuple[int, int],
                 sha256: str) -> str | None:
    """On a versioned bucket, the VersionId of the HEADed object when the put about to
    replace it sends the very same bytes (_holds: size and sha256 metadata; the mtime may
    differ, as after a touch). Left behind it would be listed as an 'overwritten' kept
    version, where the other targets keep nothing (README: "A put that finds the bytes it
    sends already there ... keeps nothing, on every target"). None otherwise, or when
    `sha256` is not known."""
    if t.trash_mode() != versioning.VERSIONING or not sha256 or not head.get("VersionId"):
        return None
    return head["VersionId"] if _holds(path, head, version, sha256) else None


def _holds(path: str, head: dict, version: tuple[int, int], sha256: str) -> bool:
    """Whether the HEADed object holds the very bytes sent: the size `version[0]` (-1,
    no object's size, when put() found the file changed since its look) and its sha256
    metadata (keys.put_args sets it on every put) equal to `sha256`, the body's. The
    mtime is not asked: the same bytes under another mtime (a touch seen live as a
    write) kept a duplicate (a trial, helper-161); the put sets the new mtime and mode.
    Size and mtime alone are no proof either: a file rewritten in place with its length
    kept and its mtime put back (ransomware, a script restoring timestamps, `reconcile
    --checksum` repairing such a change) replaced the only good copy and kept nothing (a
    review, helper-155). False when `sha256` is not known or the object has none (not
    put by mirrord): kept."""
    return (bool(sha256) and head_entry(path, head).size == version[0]
            and (head.get("Metadata") or {}).get("sha256") == sha256)
