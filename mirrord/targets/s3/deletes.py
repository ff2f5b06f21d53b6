"""The S3 target's delete(): one object by DeleteObject, many by DeleteObjects.

A file's delete is one DeleteObject (the lean transport first,
mirrord.targets.s3.lean). A tree's delete (`tree=True`) also removes every key
below `path/`, a listed page at a time, in DeleteObjects calls of
S3Target.delete_batch keys (at most 1,000: S3 API Reference, DeleteObjects);
move() (copy.py) and the trash purge (trash.py) delete through the same calls.
An absent object is no error: delete is idempotent (Target.delete). A key XML
cannot carry (keys.xml_safe) is deleted alone by DeleteObject, never in a
DeleteObjects body, which S3 would refuse whole as MalformedXML. sync()'s
batches of plain deletes, which answer per key instead, are batch.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirrord.errors import PermanentError, RetryableError
from mirrord.targets.s3 import listing
from mirrord.targets.s3.errors import NOT_FOUND_CODES, is_not_found, is_retryable, shown
from mirrord.targets.s3.keys import xml_safe

if TYPE_CHECKING:
    from mirrord.targets.s3.target import S3Target


def delete(t: S3Target, path: str, *, tree: bool = False) -> None:
    """Target.delete: the object at `path`, and with `tree` every key below `path/`."""
    key = t._key_or_none(path)
    if key is not None:
        _delete_one(t, path, key)
    if tree:
        below = t.root + path + "/"
        try:
            below.encode("utf-8")
        except UnicodeEncodeError:
            return  # nothing can be stored below a name S3 cannot hold
        for page in listing.pages(t, "delete", Prefix=below):
            delete_keys(t, path, [o["Key"] for o in page.get("Contents", ())])


def _delete_one(t: S3Target, path: str, key: str) -> None:
    """DeleteObject `key` (lean first, the SDK when the lean request gets no plain
    answer); absent is no error, any other failure raises classified."""
    client = t.client
    lean = t._lean
    try:
        if lean is not None and lean.delete(key):
            return
        client.delete_object(Bucket=t.bucket, Key=key)
    except Exception as exc:  # noqa: BLE001
        if not is_not_found(exc):
            raise t._error(exc, "delete", path) from None
        return
    if lean is not None:
        t._give_up_lean("delete", path)


def delete_if_object(t: S3Target, path: str, key: str) -> None:
    """Delete the object at `key` only when a HEAD finds one: never a DeleteObject where
    no object stands, which on SeaweedFS deletes an empty folder of that name (keys below
    `key/`) under a put running below it (S3Target.remove_file_at says what was lost).
    For a file a directory replaced: after a directory's move (copy.move) and for a
    directory at the source (remove_file_at). One HEAD, and the delete only for a file."""
    if t._exists(path, key):
        delete_keys(t, path, [key])


def delete_keys(t: S3Target, path: str, keys: list[str]) -> None:
    """delete_objects of plain `keys`, under the operation 'delete' of `path` (in errors)."""
    delete_objects(t, "delete", [{"Key": k} for k in keys], path)


def delete_objects(t: S3Target, op: str, objects: list[dict[str, str]],
                   path: str = "") -> None:
    """DeleteObjects `objects` ({"Key"[, "VersionId"]}) in batches of t.delete_batch; `op`
    and `path` name the operation in errors. Absent ones are not an error; a failed call
    raises as classified (errors.classify), and the first other per-key error raises
    RetryableError for "retry later" codes (SlowDown, InternalError...), else
    PermanentError, with how many keys were not deleted. A key XML cannot carry
    (keys.xml_safe) is sent alone, as DeleteObject, and raises the same way."""
    for obj in objects:
        if not xml_safe(obj["Key"]):
            _delete_alone(t, op, path, obj)
    objects = [obj for obj in objects if xml_safe(obj["Key"])]
    for i in range(0, len(objects), t.delete_batch):
        batch = objects[i:i + t.delete_batch]
        resp = t._call(op, path, t.client.delete_objects, Bucket=t.bucket,
                       Delete={"Objects": batch, "Quiet": True})
        errors = [e for e in resp.get("Errors", ()) if e.get("Code") not in NOT_FOUND_CODES]
        if errors:
            first = errors[0]
            code = str(first.get("Code", ""))
            where = f"{op} {shown(path)}" if path else op
            text = (f"{t.describe()}: {where}: {len(errors)} keys not deleted, "
                    f"first {shown(first.get('Key', ''))}: {code}: {first.get('Message', '')}")
            raise (RetryableError if is_retryable(code, 0) else PermanentError)(text)


def _delete_alone(t: S3Target, op: str, path: str, obj: dict[str, str]) -> None:
    """DeleteObject of one {"Key"[, "VersionId"]} through the SDK; absent is no error, any
    other failure raises classified, under `op` of `path`."""
    try:
        t.client.delete_object(Bucket=t.bucket, **obj)
    except Exception as exc:  # noqa: BLE001 - every failure is classified
        if not is_not_found(exc):
            raise t._error(exc, op, path) from None
