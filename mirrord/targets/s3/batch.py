"""The S3 target's sync(): a batch's plain deletes in DeleteObjects calls, the rest one by one.

Why: a churn of short-lived files makes as many deletes as puts, and each
DeleteObject is a round trip and ~0.5 ms of client CPU. DeleteObjects removes
up to 1,000 keys in one request (S3 API Reference, DeleteObjects: "up to 1000
keys"), answering per key; with Quiet it lists only the keys it could not
delete, each with S3's error Code and Message.

Which items go in: kind 'absent' without `tree` (a file deleted at the source),
whose path appears once in the batch (so no other item of the batch has an order
to keep with it) and whose key XML can carry (keys.xml_safe: DeleteObjects is an
XML body, refused whole as MalformedXML for one key with a C0 control character);
and only when there are at least two of them (one is cheaper
as DeleteObject through the lean transport). Everything else goes through
mirrord.targets.itemwise.sync_one, in order.

Per-key results, as delete() would give them: a key S3 reports NoSuchKey for,
or a path no key can exist for, is deleted (delete is idempotent); a per-key
error is RetryableError for "retry later" codes (SlowDown, InternalError...),
else PermanentError, naming the path and S3's code and message; a failed call
(connection, 5xx, AccessDenied) gives every item of that call the classified
error. No credential appears in any of them (the target's _error scrubs).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Sequence

from mirrord.errors import PermanentError, RetryableError
from mirrord.targets.itemwise import sync_one
from mirrord.targets.model import SyncItem, SyncResult
from mirrord.targets.s3 import versioning
from mirrord.targets.s3.keys import xml_safe
from mirrord.targets.s3.errors import NOT_FOUND_CODES, is_retryable, scrub, shown

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target


def plain_delete(item: SyncItem) -> bool:
    return item.kind == "absent" and not item.tree


def sync(t: "S3Target", items: Sequence[SyncItem]) -> list[SyncResult]:
    """One SyncResult per item, in order; plain deletes batched (see the module docstring).
    On a versioned bucket a delete the keeper found nothing to keep for (SyncItem.lives_on)
    is versioning.delete_unkept, one by one, so it leaves no noncurrent version."""
    counts = Counter(item.path for item in items)
    batched = [i for i, item in enumerate(items) if plain_delete(item) and counts[item.path] == 1
               and xml_safe(t.root + item.path) and not _unkept(t, item)]
    if len(batched) < 2:
        return [_one(t, item) for item in items]
    errors = delete_paths(t, [items[i].path for i in batched])
    results: dict[int, SyncResult] = {i: SyncResult(items[i], error=err)
                                      for i, err in zip(batched, errors)}
    return [results[i] if i in results else _one(t, item) for i, item in enumerate(items)]


def _unkept(t: S3Target, item: SyncItem) -> bool:
    return item.lives_on is not None and t.trash_mode() == versioning.VERSIONING


def _one(t: S3Target, item: SyncItem) -> SyncResult:
    """sync_one, or versioning.delete_unkept for a delete _unkept() names."""
    if not (plain_delete(item) and _unkept(t, item)):
        return sync_one(t, item)
    assert item.lives_on is not None
    try:
        versioning.delete_unkept(t, item.path, item.lives_on)
    except (RetryableError, PermanentError) as exc:
        return SyncResult(item, error=exc)
    return SyncResult(item)


def delete_paths(t: "S3Target", paths: Sequence[str]) -> list[Exception | None]:
    """Delete the object at each path with DeleteObjects, t.delete_batch keys (≤ 1,000) a
    call; one error (RetryableError / PermanentError) or None per path, in order."""
    out: list[Exception | None] = [None] * len(paths)
    keyed: list[tuple[int, str]] = []
    for i, path in enumerate(paths):
        try:
            key = t._key_or_none(path)
        except PermanentError as exc:   # not a relative path mirrord could have stored
            out[i] = exc
            continue
        if key is not None:              # None: S3 cannot hold this name, nothing to delete
            keyed.append((i, key))
    for start in range(0, len(keyed), t.delete_batch):
        chunk = keyed[start:start + t.delete_batch]
        for i, err in _delete_chunk(t, [paths[i] for i, _ in chunk], [k for _, k in chunk]):
            out[chunk[i][0]] = err
    return out


def _delete_chunk(t: "S3Target", paths: list[str], keys: list[str]) -> list[tuple[int, Exception]]:
    """One DeleteObjects call; (position in `keys`, error) for each key not deleted."""
    try:
        resp = t.client.delete_objects(Bucket=t.bucket, Delete={
            "Objects": [{"Key": key} for key in keys], "Quiet": True})
    except Exception as exc:  # noqa: BLE001 - every failure is classified, per path
        return [(i, t._error(exc, "delete", path)) for i, path in enumerate(paths)]
    where = {key: i for i, key in enumerate(keys)}
    failed: list[tuple[int, Exception]] = []
    for error in resp.get("Errors", ()):
        i = where.get(str(error.get("Key", "")))
        code = str(error.get("Code") or "")
        if i is None or code in NOT_FOUND_CODES:
            continue
        text = (f"{t.describe()}: delete {shown(paths[i])}: {code or 'error'}"
                + (f": {error['Message']}" if error.get("Message") else ""))
        kind = RetryableError if is_retryable(code, 0) else PermanentError
        failed.append((i, kind(scrub(text, t._secrets))))
    return failed
