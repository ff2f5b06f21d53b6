"""The rsync target's reads of single files on the mirror host and its writes of the
`.mirrord/` meta files (the heartbeat), as remote commands: a mixin of RsyncTarget,
which owns the connection (`_run`, `in_root`, `_rel`, `_check`, `describe`).

Every path is checked for a symlink on the way (remote.NOLINK): a link planted in the
mirror is never followed out of it.
"""

from __future__ import annotations

import os
import stat

from mirrord import filekinds
from mirrord.errors import PermanentError
from mirrord.targets.paths import META_DIR, META_LIMIT
from mirrord.targets.rsync.remote import EXIT_ABSENT, MKDIRS, NOLINK, RSYNC_TMP, q


class RemoteReads:
    """read, checksum, write_meta and read_meta of Target, for RsyncTarget."""

    def read(self, path: str) -> bytes | None:
        return self._cat(self._rel(path), path)

    def _cat(self, p: bytes, what: str, *, limit: int | None = None,
             meta: bool = False) -> bytes | None:
        """The file's bytes (None: absent); PermanentError past `limit` bytes, of which at
        most one more is read (head -c: nothing larger crosses the connection); `meta`: in
        the meta slot (connection.SshConnection.session)."""
        read = b"cat --" if limit is None else b"head -c %d --" % (limit + 1)
        proc = self._run(self.in_root(NOLINK + (
            b"nolink %s && [ -f %s ] || exit %d\nexec %s %s" % (p, p, EXIT_ABSENT, read, p))),
            meta=meta)
        if proc.returncode == EXIT_ABSENT:
            return None
        self._check(proc, f"cannot read {what!r}")
        if limit is not None and len(proc.stdout) > limit:
            raise PermanentError(f"{self.describe()}: {what!r} holds more than {limit} bytes: not read")
        return proc.stdout

    def checksum(self, path: str) -> str | None:
        p = self._rel(path)
        proc = self._run(self.in_root(NOLINK + (
            b"nolink %s && [ -f %s ] || exit %d\nsha256sum < %s" % (p, p, EXIT_ABSENT, p))))
        if proc.returncode in (EXIT_ABSENT, 127):   # absent, or no sha256sum on the host
            return None
        self._check(proc, f"cannot checksum {path!r}")
        return proc.stdout.split()[0].decode("ascii")

    # ------------------------------------------------------------ meta
    @staticmethod
    def _meta(name: str) -> bytes:
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise PermanentError(f"bad meta name {name!r}")
        return q(b"./" + META_DIR.encode() + b"/" + os.fsencode(name))

    def write_meta(self, name: str, data: bytes) -> None:
        """Atomically replace `.mirrord/<name>` (the heartbeat every few seconds): the own
        area is made real first (mkdirs: a symlink planted at .mirrord after open() had the
        heartbeat written outside), a directory standing at the name is removed, and the
        rename is `mv -T` (a plain `mv` moved the file INTO a directory or a symlink to one
        there: the heartbeat went outside, or was lost, with success reported)."""
        target = self._meta(name)
        body = (MKDIRS + b"mkdirs ./%s && t=$(mktemp ./%s/meta.XXXXXX) || exit 1\n"
                % (RSYNC_TMP, RSYNC_TMP)
                + b"if [ -d %s ] && [ ! -L %s ]; then rm -rf -- %s; fi\n" % (target, target, target)
                + b"if cat >\"$t\" && chmod 644 \"$t\" && mv -T -f -- \"$t\" %s; then exit 0; fi\n"
                b"rm -f -- \"$t\"; exit 1" % target)
        self._check(self._run(self.in_root(body), bytes(data), meta=True),   # a slot of its own
                    f"cannot write {META_DIR}/{name}")

    def read_meta(self, name: str) -> bytes | None:
        # the meta slot: the daemon reads its heartbeat back before each write (mirror_wiped)
        return self._cat(self._meta(name), f"{META_DIR}/{name}", limit=META_LIMIT, meta=True)

    def meta_kind(self, name: str) -> tuple[str, str] | None:
        """Target.meta_kind in one remote command: find's %y (the type of what it is given,
        never followed: find -P) of `.mirrord`, then of the name below it; a symlink also
        with where it points (readlink). Nothing is opened on the host."""
        out = self._run(self.in_root(_KIND_SCRIPT % {b"dir": META_DIR.encode(),
                                                      b"meta": self._meta(name)}), meta=True)
        self._check(out, f"cannot look at {META_DIR}/{name}")
        fields = out.stdout.split(b"\0")
        if len(fields) < 2 or fields[1] not in _FIND_TYPES:
            return None
        what = filekinds.kind(_FIND_TYPES[fields[1]])
        to = os.fsdecode(fields[2].removesuffix(b"\n")) if len(fields) > 2 else ""
        if fields[1] == b"l" and to:   # readlink's line, as the local target names it
            what += f" to {to[:200]!r}"
        where = f"{META_DIR}/{name}" if fields[0] == b"m" else META_DIR
        return where, what


# find -printf %y letters -> st_mode types (filekinds.kind names them)
_FIND_TYPES = {b"f": stat.S_IFREG, b"d": stat.S_IFDIR, b"l": stat.S_IFLNK, b"p": stat.S_IFIFO,
               b"s": stat.S_IFSOCK, b"b": stat.S_IFBLK, b"c": stat.S_IFCHR}
# prints "d\0TYPE\0[LINK]" for a `.mirrord` that is no directory, "m\0TYPE\0[LINK]" for a
# name below it that is no regular file, nothing when absent or as expected
_KIND_SCRIPT = (b"t=$(find ./%(dir)s -maxdepth 0 -printf %%y 2>/dev/null) || exit 0\n"
                b"if [ -n \"$t\" ] && [ \"$t\" != d ]; then printf 'd\\0%%s\\0' \"$t\"\n"
                b"  [ \"$t\" != l ] || readlink -- ./%(dir)s; exit 0; fi\n"
                b"[ -n \"$t\" ] || exit 0\n"
                b"t=$(find %(meta)s -maxdepth 0 -printf %%y 2>/dev/null) || exit 0\n"
                b"if [ -n \"$t\" ] && [ \"$t\" != f ]; then printf 'm\\0%%s\\0' \"$t\"\n"
                b"  [ \"$t\" != l ] || readlink -- %(meta)s; fi\nexit 0")
