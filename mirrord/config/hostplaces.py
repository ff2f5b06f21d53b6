"""Places on this host: where a target writes and deletes here, and the files mirrord
keeps here for itself, which must never lie in such a place.

A target's reconcile deletes as extra whatever its root holds that its sources do not.
mirrord's own files there are not mirrored files: with `[mirrord] state_dir` inside a
target's root each reconcile pass deleted journal.db and the lock files (reported as
`extra=5 deletes=5`, "in sync", exit 0), and the daemon's start-up pass deleted them
while it used them. A target's root is on this host when the target is local, or rsync
to a loopback host (`localhost`, 127.0.0.0/8, ::1: the same file system reached over
ssh, the README's rule for overlap with sources).
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from mirrord.config.model import FailoverConfig, TargetConfig
from mirrord.config.values import _Reader


def real(path: Path) -> Path:
    """`path` with symlinks resolved; as written when it holds a symlink loop."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):   # a symlink loop: compared as written
        return path


def own_place(path: Path) -> Path:
    """Where a file mirrord replaces or removes (failover `link`, `flag`) lies: its
    directory with symlinks resolved, its own name as written, never followed (a symlink
    there is the file itself, replaced or refused, never written through)."""
    return real(path.parent) / path.name


def _under(child: Path, parent: Path) -> bool:
    """`child` is `parent` or below it, both already resolved (nothing followed here)."""
    return child == parent or parent in child.parents


def inside(child: Path, parent: Path) -> bool:
    """Whether `child` is `parent` or below it, symlinks resolved (a source's path is kept
    as written: a link to the target's directory still overlaps it)."""
    child, parent = real(child), real(parent)
    return child == parent or parent in child.parents


def overlap(a: Path, b: Path) -> bool:
    """Whether `a` and `b` are one place, or one lies inside the other."""
    return inside(a, b) or inside(b, a)


def loopback(host: str, *, hosts_file: str = "/etc/hosts") -> bool:
    """Whether an rsync `host` names this machine: `localhost`, a name below `.localhost`
    (RFC 6761: always loopback), a loopback or unspecified address in any spelling
    inet_aton(3) takes (127.0.0.0/8, `127.1`, `0x7f.1`, `0.0.0.0`, which Linux connects
    to this host; `::1`, `::`, `::ffff:127.0.0.1`), this machine's own host name, or a
    name `hosts_file` maps to such an address (hosts(5); no DNS is asked at load). A
    breaker's `127.1`, `0.0.0.0`, `::ffff:127.0.0.1` and the host name `vm` passed, and
    each reconcile deleted a state_dir inside the target's root. An ssh_config alias
    naming this machine is not seen here."""
    name = host.lower().rstrip(".").strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    if _local_address(name):
        return True
    me = socket.gethostname().lower().rstrip(".")
    if name and name in (me, me.split(".")[0]):
        return True
    return any(name in names and _local_address(addr) for addr, names in _hosts(hosts_file))


def _local_address(text: str) -> bool:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        try:   # inet_aton's shorthands: 127.1, 0x7f.0.0.1, 2130706433
            addr = ipaddress.IPv4Address(socket.inet_aton(text)) if text else None
        except OSError:
            return False
    if addr is None:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback or addr.is_unspecified


def _hosts(path: str) -> list[tuple[str, set[str]]]:
    """(address, {names}) of each line of a hosts(5) file; [] when it cannot be read."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2:
                    out.append((words[0], {w.lower().rstrip(".") for w in words[1:]}))
    except OSError:
        return []
    return out


def here(t: TargetConfig) -> Path | None:
    """The path on this machine a target writes to: a local target's, or an rsync
    target's on a loopback host; None for any other (S3, a remote mirror host)."""
    if t.local is not None:
        return t.local.path
    if t.rsync is not None and loopback(t.rsync.host):
        return Path(t.rsync.path)
    return None


def _own_files(state_dir: Path, fo: FailoverConfig | None) -> list[tuple[str, Path, Path]]:
    """(key, path as shown, path compared) of each place mirrord itself writes on this
    host: state_dir (journal.db, the locks, failover.log, the switch record), and the
    failover's `link` (replaced by a flip) or `flag` (written by a flip). `link` is a
    symlink itself, and the flag is never followed: each compared as its resolved
    directory plus its own name (own_place), whatever a symlink there points at."""
    own = [("state_dir", state_dir, real(state_dir))]
    if fo is not None:
        if fo.mode == "symlink" and fo.link is not None:
            own.append(("link", fo.link, own_place(fo.link)))
        if fo.mode == "flagfile" and fo.flag is not None:
            own.append(("flag", fo.flag, own_place(fo.flag)))
    return own


def check_own_files_outside_targets(r: _Reader, targets: dict[str, TargetConfig],
                                    state_dir: Path, fo: FailoverConfig | None) -> None:
    """A problem at the own file's key ([mirrord] state_dir, [failover] link or flag)
    for each target place on this host (here) that overlaps it, in either direction:
    the file inside the target's root (its reconcile deletes it as extra; a flip undone
    by the next pass), or the target's root inside or at it (the target's writes, its
    trash and its deletes act among mirrord's own files). Places already refused as
    unusable are left out. Exit 2 at load, so check-config, run and reconcile all stop
    before anything is touched."""
    unusable = {(p.section, p.key) for p in r.problems}
    for key, shown, path in _own_files(state_dir, fo):
        section = "mirrord" if key == "state_dir" else "failover"
        if (section, key) in unusable:
            continue
        for t in targets.values():
            root = here(t)
            if root is None or (f"target:{t.name}", "path") in unusable:
                continue
            placed = real(root)
            if not (_under(path, placed) or _under(placed, path)):
                continue
            where = "on this host" if t.local is not None else f"on {t.rsync.host}, this host"
            if _under(path, placed):
                how = (f"is inside [target:{t.name}] path {root} ({where}): the target's "
                       "reconcile would delete it as extra")
            else:
                how = (f"holds [target:{t.name}] path {root} ({where}): the target would "
                       "write and delete among mirrord's own files")
            r.problem(section, key, f"{shown} {how}; keep mirrord's own files and every "
                      "target's place apart, neither inside the other")
