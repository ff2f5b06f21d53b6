"""S3 keys and object metadata for the S3 target: which paths S3 can store, and the
formats of what is stored with each object.

- The key of a file is exactly `prefix + path`: no quoting or normalisation, so
  spaces, `%`, `+`, a leading `-` and any Unicode round-trip. A name that is not
  valid UTF-8 (it reaches us surrogate-escaped) or whose key would exceed 1024
  bytes cannot be stored: PermanentError naming that file, nothing else affected.
- Content-Type from the file name (mimetypes); metadata `mtime` (source mtime,
  seconds since the epoch as a decimal string with 9 places, formatted from the
  integer nanoseconds: the key and format rclone uses, exact to the nanosecond),
  `mode` (permission bits as rclone's local backend writes its `mode` metadata:
  octal, unix style, file type included, "0100644"), and `sha256` (hex of the content:
  3 us per 4 KiB file, ~1.7 GB/s on larger ones, so checksum() can verify
  without downloading). Objects are private: an ACL is sent only when `acl` is
  configured; `storage_class` likewise.
- A key holding a character XML 1.0 cannot carry (most C0 controls, U+FFFE, U+FFFF)
  is stored and listed like any other, but cannot be named in DeleteObjects, whose
  request is an XML body: S3 answers MalformedXML for the whole call. xml_safe()
  tells the delete paths to send such a key alone, as DeleteObject (key in the URL).
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat as stat_mod
from typing import Any

from mirrord.config import S3Options
from mirrord.errors import PermanentError
from mirrord.targets.model import Entry
from mirrord.targets.mtime import format_ns, ns_to_float, parse_ns
from mirrord.targets.paths import check_relpath
from mirrord.targets.s3.errors import shown

MAX_KEY_BYTES = 1024
# W3C XML 1.0 (Fifth Edition) section 2.2, production [2] Char: #x9 | #xA | #xD |
# [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. Everything else, below.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# mimetypes gives no type for compressed files ("x.gz" -> (None, 'gzip')): name the container.
_ENCODING_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2",
                   "xz": "application/x-xz", "compress": "application/x-compress",
                   "br": "application/x-brotli"}


mimetypes.init()  # once, here: lazy initialisation from several threads is not safe


def content_type(path: str) -> str:
    """Content-Type from the file name's extension (never parsed as a URL)."""
    ext = os.path.splitext(path.rsplit("/", 1)[-1])[1]
    if not ext:
        return "application/octet-stream"
    ctype, encoding = mimetypes.guess_type("f" + ext, strict=False)
    if encoding:
        return _ENCODING_TYPES.get(encoding, "application/octet-stream")
    return ctype or "application/octet-stream"


def format_mtime(mtime_ns: int) -> str:
    """Nanoseconds since the epoch as rclone's `mtime` metadata: decimal seconds, 9 places."""
    return format_ns(mtime_ns)


def format_mode(mode: int) -> str:
    """Permission bits as rclone's `mode` metadata: octal, unix style, with the regular-file
    type bits (rclone backend/local/metadata.go: example "0100664")."""
    return f"0{stat_mod.S_IFREG | stat_mod.S_IMODE(mode):o}"


def parse_mode(text: str | None) -> int | None:
    """The permission bits of a `mode` metadata value ("0100644", "644"); None if absent or bad."""
    try:
        return stat_mod.S_IMODE(int(text, 8)) if text else None
    except (ValueError, OverflowError):   # a value past a C long: not ours (breaker J's kind)
        return None


def key_for(root: str, path: str, where: str) -> str:
    """The key `root + path` for a path to store; PermanentError (naming `where` and the
    path) when S3 cannot hold it: not valid UTF-8, or longer than MAX_KEY_BYTES."""
    key = root + check_relpath(path)
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise PermanentError(f"{where}: {shown(path)}: the name is not valid "
                             "UTF-8, which S3 keys must be") from None
    if len(raw) > MAX_KEY_BYTES:
        raise PermanentError(f"{where}: {shown(path)}: the key would be "
                             f"{len(raw)} bytes, S3 allows {MAX_KEY_BYTES}")
    return key


def xml_safe(key: str) -> bool:
    """True when `key` (str) can be named in an XML request body such as DeleteObjects'; False
    when it holds a character outside XML 1.0's Char production (a C0 control other than
    tab, LF and CR, U+FFFE, U+FFFF): S3 (and SeaweedFS) refuse the whole request as
    MalformedXML, so such a key must go alone, as DeleteObject."""
    return _NOT_XML_CHAR.search(key) is None


def object_args(opts: S3Options, ctype: str, meta: dict[str, str]) -> dict[str, Any]:
    """PutObject/CopyObject arguments: Content-Type, metadata, ACL and storage class if set."""
    args: dict[str, Any] = {"ContentType": ctype, "Metadata": meta}
    if opts.acl:
        args["ACL"] = opts.acl
    if opts.storage_class:
        args["StorageClass"] = opts.storage_class
    return args


def put_args(opts: S3Options, path: str, mtime_ns: int, digest: str, mode: int) -> dict[str, Any]:
    """object_args for a put of `path`: mtime (ns), mode and sha256 (hex) metadata."""
    meta = {"mtime": format_mtime(mtime_ns), "mode": format_mode(mode), "sha256": digest}
    return object_args(opts, content_type(path), meta)


def head_entry(path: str, head: dict[str, Any]) -> Entry:
    """The entry a HEAD describes: mtime exactly from the `mtime` metadata (else the
    server's LastModified, mtime_ns 0), mode from `mode` (None when absent)."""
    meta = head.get("Metadata") or {}
    try:
        ns = parse_ns(meta["mtime"])
        mtime = ns_to_float(ns)
    except (KeyError, ValueError, TypeError, OverflowError):
        # OverflowError: 400 digits of metadata past a float raised from the reconcile
        # (breaker J); a year-2300 mtime (ours: a file dated so) still reads exactly
        ns, mtime = 0, head["LastModified"].timestamp()
    return Entry(path, head["ContentLength"], mtime, token=head.get("ETag"), mtime_ns=ns,
                 mode=parse_mode(meta.get("mode")))
