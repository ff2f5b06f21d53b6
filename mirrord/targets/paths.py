"""Relative paths on a target: the safety check, joining, OS bytes, and mirrord's own area.

Paths are relative to the target root, '/'-separated, never empty, never starting
with '/', never containing '.' or '..' components (check_relpath refuses the rest).
`.mirrord/` at the root (META_DIR) is mirrord's: the heartbeat, staged transfers,
the trash; no user path may enter it.
"""

from __future__ import annotations

import os

from mirrord.errors import PermanentError

META_DIR = ".mirrord"
# the most Target.read_meta reads (the heartbeat is a few KiB): a larger file there is no
# mirrord file, and the health service read a planted one whole at every check
META_LIMIT = 1 << 20


def check_relpath(path: str) -> str:
    """Refuse anything that could escape a target root; return the path unchanged.
    PermanentError for an empty or absolute path, a NUL byte, an empty, '.' or '..'
    component, or a path below META_DIR at the root."""
    if not path or path.startswith("/") or "\0" in path:
        raise PermanentError(f"unsafe path {path!r}")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise PermanentError(f"unsafe path {path!r}")
    if own_area(path):
        raise PermanentError(f"{path!r} is inside mirrord's own area {META_DIR}/")
    return path


def own_area(path: str) -> bool:
    """Whether `path` (relative to the target ROOT, not to a source's dest) is in mirrord's
    own area: META_DIR at the root or below it. The one rule the shipper (check_relpath),
    the targets' listings and reconcile's (mirrord.reconcile.listings) follow: a source's
    own `.mirrord/` mirrored below a non-empty dest is a user's data like any other (the
    pass skipped it below the dest, and re-sent it in every pass)."""
    return path.split("/", 1)[0] == META_DIR


def join(*parts: str) -> str:
    """Join relative path pieces with '/', skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def fs_path(path: str) -> bytes:
    """The bytes of a relative path for OS calls (surrogateescape round-trips odd names)."""
    return os.fsencode(path)
