"""Paths inside a target written in the config: a source's `dest`, an S3 target's
`prefix`, an rsync target's remote `path`. Each must name one place the target can hold
as written, below its root: what would escape it or cannot be stored is refused at load.
"""

from __future__ import annotations

import re

# ASCII control characters: AWS's object key guidelines ("Naming Amazon S3 objects") list
# 0x00-0x1F and 0x7F among the characters to avoid (S3's XML listings cannot carry all of
# them), and in a config-written path they are a stray paste, never a name meant
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
S3_KEY_MAX = 1024     # bytes of UTF-8 in an S3 key, prefix included (same AWS page)
NAME_MAX = 255        # bytes in one file name on Linux file systems (limits.h NAME_MAX)


def parse_sub_path(text: str, *, name_max: bool = False) -> str:
    """A '/'-separated relative path written in the config (a source's `dest`, an S3
    `prefix` without its trailing '/') -> the text. ValueError for a '.' or '..' segment
    (on a file-system target '..' leaves the target's root; on S3 it is a literal key
    segment the AWS guidelines warn against, which S3-compatible stores backed by a file
    system, and every tool that maps keys to paths, resolve out of the prefix), an empty
    segment ('a//b': a key no file path maps to), an ASCII control character or NUL, and
    with `name_max` a segment longer than NAME_MAX bytes (a directory no target can make)."""
    found = _CONTROL_CHARS.search(text)
    if found:
        raise ValueError(f"holds a control character ({ord(found.group()):#04x}): {text!r}")
    for part in text.split("/"):
        if part in (".", ".."):
            raise ValueError(f"has a {part!r} segment: {text!r}")
        if not part:
            raise ValueError(f"has an empty segment ('//' or a '/' at an end): {text!r}")
        if name_max and len(part.encode()) > NAME_MAX:
            raise ValueError(f"has a segment longer than {NAME_MAX} bytes: {part[:40]!r}...")
    return text


def parse_s3_prefix(text: str) -> str:
    """An S3 target's `prefix` -> the prefix with one trailing '/' ("" for none).

    ValueError for a leading '/' (the key would start with an empty segment), what
    parse_sub_path refuses, and a prefix that leaves no room for a file name below it
    within S3_KEY_MAX bytes (S3 refuses such a key with KeyTooLongError on every put)."""
    if text.startswith("/"):
        raise ValueError(f"must not start with '/': {text!r}")
    body = text.removesuffix("/")
    if not body:
        return ""
    parse_sub_path(body)
    prefix = body + "/"
    if len(prefix.encode()) >= S3_KEY_MAX:
        raise ValueError(f"is {len(prefix.encode())} bytes: no room left for a file name "
                         f"within S3's {S3_KEY_MAX}-byte key limit")
    return prefix
