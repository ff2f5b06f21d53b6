"""Keys checked against this host, not only as text: whether [mirrord] state_dir's
path can be a directory here, and whether an rsync target's ssh_command names a
program that can run here.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from mirrord.config.cmdline import program_missing
from mirrord.config.values import _Reader, parse_command
from mirrord.logsetup import redact


def read_state_dir(r: _Reader) -> Path:
    """[mirrord] state_dir (default ./state). A problem when written empty, or when it, or
    a directory above it, is something other than a directory: the lock's mkdir then
    stopped `mirrord run` with a bare "[Errno 17] File exists" (exit 1). Whether it can be
    created or written is known only by trying: the commands that write it say so
    (mirrord.locks.take, StateDirError)."""
    s = "mirrord"
    if r.raw(s, "state_dir") == "":
        r.empty_refused(s, "state_dir")
    path = r.path(s, "state_dir") or (r.base / "state").resolve()
    for above in (path, *path.parents):
        if above.exists():
            if not above.is_dir():
                what = "is" if above == path else f"cannot be made: {above} is"
                r.problem(s, "state_dir", f"{path} {what} not a directory")
            break
    return path


def read_ssh_command(r: _Reader, section: str) -> str:
    """ssh_command (default `ssh`). A problem when its program cannot be run here: not
    found on PATH, or a path that is not an executable file. Found only when the rsync
    target was opened, it was a bare "[Errno 2] No such file or directory" that stopped
    the whole daemon (every other target too); a program missing on this host is a fact
    of its install, not a passing fault to retry, so it is refused with the file."""
    command = r.get(section, "ssh_command", parse_command, "ssh")
    where = program_missing(command, "ssh")
    if where is not None:
        program = shlex.split(command)[0] if command else "ssh"
        r.problem(section, "ssh_command", f"the program {redact(program)!r} {where}")
    return command
