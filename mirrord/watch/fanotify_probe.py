"""Whether fanotify can watch a source here, and opening the group a FanotifyWatcher uses.

Kept apart from the watcher so `watcher = auto` can ask without building one; the
group a successful probe opened is handed to the watcher (probe_group), not closed.
Requirements come from fanotify_init(2), fanotify_mark(2) and
open_by_handle_at(2): FAN_REPORT_TARGET_FID needs Linux 5.17, a filesystem
mark and an unlimited queue need CAP_SYS_ADMIN, open_by_handle_at needs
CAP_DAC_READ_SEARCH.
"""

from __future__ import annotations

import errno
import os

from mirrord.watch import fanotify_sys as S

INIT_FLAGS = (S.FAN_CLOEXEC | S.FAN_NONBLOCK | S.FAN_CLASS_NOTIF | S.FAN_REPORT_FID
              | S.FAN_REPORT_DFID_NAME | S.FAN_REPORT_TARGET_FID)
MARK_MASK = (S.FAN_CREATE | S.FAN_DELETE | S.FAN_RENAME | S.FAN_CLOSE_WRITE | S.FAN_MODIFY
             | S.FAN_ATTRIB | S.FAN_ONDIR)

def open_group(*, unlimited: bool = True) -> tuple[int, bool]:
    """A fanotify group fd for INIT_FLAGS and whether its queue is unlimited. Falls back to a
    bounded queue (fs.fanotify.max_queued_events) on EPERM; raises OSError otherwise."""
    if unlimited:
        try:
            return S.fanotify_init(INIT_FLAGS | S.FAN_UNLIMITED_QUEUE), True
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
    return S.fanotify_init(INIT_FLAGS), False


def fanotify_available(path: str) -> tuple[bool, str]:
    """Whether this kernel and process can run a FanotifyWatcher on `path`, and why not
    (probe_group's answer, its group closed). Never raises."""
    group, why = probe_group(path)
    if group is not None:
        os.close(group[0])
    return group is not None, why


def probe_group(path: str) -> tuple[tuple[int, bool] | None, str]:
    """Try what a FanotifyWatcher's start() does on `path`: fanotify_init with FID
    reporting (Linux 5.17 for FAN_REPORT_TARGET_FID), a filesystem mark (CAP_SYS_ADMIN)
    and open_by_handle_at on `path` (CAP_DAC_READ_SEARCH). Returns ((group fd, whether
    its queue is unlimited), why) with the group left open and marked, for the watcher
    to use, or (None, why not). Never raises. Handing the group over saves a close on
    the way to watching (issue 18): closing a group with a filesystem mark waits for an
    SRCU grace period, under 1 ms on an idle file system here but 8-18 ms measured while
    another process was deleting a large tree on it."""
    fds: list[int] = []
    try:
        try:
            fd, unlimited = open_group()
        except OSError as exc:
            return None, _init_reason(exc)
        fds.append(fd)
        try:
            S.fanotify_mark(fd, S.FAN_MARK_ADD | S.FAN_MARK_FILESYSTEM, MARK_MASK, path)
        except OSError as exc:
            return None, f"cannot mark the file system of {path}: {exc.strerror}" + (
                " (needs CAP_SYS_ADMIN)" if exc.errno == errno.EPERM else "")
        try:
            fds.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            fds.append(S.open_by_handle(fds[-1], S.name_to_handle(path)))
        except OSError as exc:
            return None, f"cannot open file handles on {path}: {exc.strerror}" + (
                " (needs CAP_DAC_READ_SEARCH)" if exc.errno == errno.EPERM else "")
        fds.remove(fd)
        return (fd, unlimited), "fanotify filesystem mark, " + (
            "unlimited queue" if unlimited else "bounded queue")
    finally:
        for other in fds:
            os.close(other)


def _init_reason(exc: OSError) -> str:
    if exc.errno == errno.EPERM:
        return "fanotify_init: not permitted (needs CAP_SYS_ADMIN)"
    if exc.errno == errno.EINVAL:
        return "fanotify_init: kernel lacks FAN_REPORT_TARGET_FID (needs Linux 5.17 or later)"
    if exc.errno == errno.ENOSYS:
        return "fanotify_init: kernel built without fanotify (CONFIG_FANOTIFY)"
    return f"fanotify_init: {exc.strerror}"


def mounts_below(root: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points strictly below `root` (absolute paths, sorted). A filesystem mark sees
    only its own file system, and a bind mount's paths resolve through the root's mount,
    so nothing below any of them is reported. Field 5 of proc(5)'s mountinfo, with its
    octal escapes (\\040 for a space) undone."""
    prefix = os.path.realpath(root).rstrip("/") + "/"   # mountinfo names real paths
    found = set()
    try:
        with open(mountinfo, "rb") as fh:
            for line in fh:
                fields = line.split(b" ")
                if len(fields) > 4:
                    point = os.fsdecode(fields[4].decode("unicode_escape").encode("latin-1"))
                    if point.startswith(prefix):
                        found.add(point)
    except OSError:
        return []
    return sorted(found)
