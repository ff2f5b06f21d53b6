"""Keys naming a file on this host that a target reads: an S3 target's `ca_bundle`, an
rsync target's `ssh_key` and `known_hosts`. Each is resolved against the config file's
directory (the README: "Relative paths are relative to the config file's directory"),
and checked when the file is loaded, where a missing one can only fail.

Before: `ca_bundle` was kept as written, so `ca_bundle = keys/ca.pem` worked only when
run from the config's directory; from `/` (systemd's working directory) every request
failed with "SSL validation failed ... [Errno 2] No such file or directory", naming
neither the file nor the key, and a missing absolute one passed check-config. A missing
`ssh_key` made ssh fall back to its default keys (a refused login), and a key others may
read is ignored by ssh ("UNPROTECTED PRIVATE KEY FILE"): the same refused login.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mirrord.config.values import _Reader


def _kind(mode: int) -> str:
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file"


def read_file_key(r: _Reader, section: str, key: str, *, must_exist: bool) -> Path | None:
    """section/key as a path made absolute against the config's directory (None when
    unset). A problem when it names something other than a regular file, or, with
    `must_exist`, nothing. A file this user may not even stat (a directory above it
    closed to it: another user's check-config) is left to the command that reads it."""
    path = r.path(section, key)
    if path is None:
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if must_exist:
            r.problem(section, key, f"{path} does not exist")
        return path
    except NotADirectoryError:
        r.problem(section, key, f"{path} cannot exist: a path above it is not a directory")
        return path
    except OSError:
        return path
    if not stat.S_ISREG(st.st_mode):
        r.problem(section, key, f"{path} is {_kind(st.st_mode)}, not a file")
    return path


def read_ca_bundle(r: _Reader, section: str) -> str:
    """An S3 target's `ca_bundle` -> its absolute path ("" for the system's CAs): a file
    of PEM certificates that must exist (botocore and ssl read it at each connection)."""
    path = read_file_key(r, section, "ca_bundle", must_exist=True)
    return str(path) if path is not None else ""


def read_ssh_files(r: _Reader, section: str, strict: str) -> tuple[Path | None, Path | None]:
    """An rsync target's (ssh_key, known_hosts), each absolute or None. `ssh_key` must be
    an existing file that, when this user owns it, others may not read (ssh ignores such
    a key, sshkey_perm_ok). `known_hosts` must be a file when it exists, and exist with
    `strict_host_key_checking = yes` (ssh would refuse every host); with accept-new or
    no, ssh makes it on the first connection."""
    key = read_file_key(r, section, "ssh_key", must_exist=True)
    if key is not None:
        try:
            st = os.stat(key)
        except OSError:
            st = None
        if (st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()
                and st.st_mode & 0o077):
            r.problem(section, "ssh_key", f"{key} may be read by others (mode "
                      f"{st.st_mode & 0o777:o}): ssh ignores such a key; chmod 600 it")
    known = read_file_key(r, section, "known_hosts", must_exist=strict == "yes")
    return key, known
