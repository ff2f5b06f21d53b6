"""The rsync target's root on the mirror host, checked before every command it runs there.

An unmounted mirror leaves its mount point, an empty directory on the host's root file
system. The target went on writing there: rsync made the files (and with `--mkpath` the
directories to them), mkdirs, moves and the heartbeat went in, and a reconcile listed the
empty mount point and sent the whole mirror into it, while the real mirror, once mounted
again, lacked every change since. The local target refuses that with RootIdentity
(mirrord.targets.root_check); this is the same rule on the host, in shell, so that it
rides in each remote command (RsyncTarget.in_root) and in front of each rsync receiver
(--rsync-path: rsync(1) runs it "with the help of a shell") at no extra round trip:

- identity: the writable open leaves a witness, `.mirrord/open-<random token>`, in a
  root that held something, and prints the root's device number and whether it is a
  mount point (mountpoint(1) reads mountinfo: a bind mount of the same file system
  changes no device number). Afterwards a root with neither this open's witness (shell
  built-ins: the usual case starts no process) nor that identity refuses. The witness is
  this open's own: a `.mirrord/` that an earlier open left in a bare mount point (the
  mount failed at boot, a reconcile ran there) opened the way for good when any
  `.mirrord/` was enough (a breaker). A root emptied, or removed and made again, on the
  same file system still takes files (own_area writes the witness again).
- content: an open that found the root missing or holding nothing, while the daemon's
  journal records paths shipped to it (Target.expect_mirror: the mount failed at boot),
  refuses until the root holds something, and then takes it whatever its identity (the
  real mirror mounted over the mount point the open saw), until the next open: the
  witness such an open left (maybe in the bare mount point) is never asked for, and the
  next open's is another. A first start on an empty root checks its witness as usual
  (without one, each command paid the identity's two processes: 4.9 ms over loopback
  ssh).

A refusal exits EXIT_NO_ROOT with its reason on stderr: a RetryableError from the
connection, or rsync exit 12 for a run (retried). Nothing here holds a single quote: it
runs inside `sh -c '...'`.
"""

from __future__ import annotations

import logging
import re
import secrets

from mirrord.logsetup import kv
from mirrord.targets.paths import META_DIR
from mirrord.targets.root_check import WITNESS
from mirrord.targets.rsync.remote import (EXIT_NO_ROOT, HOLDS_NOTHING, MKDIRS, ROOT_EMPTY,
                                          RSYNC_TMP, q)

# The root's identity, run cd'ed into it: "<st_dev>" or "<st_dev>m" (a mount point). A
# tool missing on the host prints nothing for its part, the same at open as after.
ROOT_ID = b'$(stat -c %d . 2>/dev/null)$(mountpoint -q . 2>/dev/null && echo m)'
ROOT_ID_MARK = b"MIRRORD-ROOT-ID"
_ID_LINE = re.compile(rb"^%s (\d*m?)$" % ROOT_ID_MARK, re.MULTILINE)

log = logging.getLogger("mirrord.targets")

NOT_OPENED = (b"the target root is not the directory opened (its file system unmounted, or "
              b"another mounted over it?): nothing is read or written there until it is back")
HOLDS_NOTHING_YET = (b"the target root holds nothing while paths shipped to it are recorded "
                     b"(is its file system mounted?): nothing is written there until it holds "
                     b"the mirror again; emptied on purpose: stop the daemon and run mirrord "
                     b"reconcile for this target")


def witness(token: str) -> bytes:
    """The relative path of an open's witness file (root_check.WITNESS, the local
    target's, named the same way)."""
    return f"{META_DIR}/{WITNESS}{token}".encode()


def prepare_script(root: bytes, rsync_path: bytes, *, sweep: bool, token: str) -> bytes:
    """open(): print ROOT_EMPTY when the root is missing or holds nothing (HOLDS_NOTHING),
    before anything is made; create the root and RSYNC_TMP; write the witness of `token`
    (the open's: a bare mount point may get one, but the check of an open that found the
    root empty, awaiting, asks for content and never for a witness); print the root's identity (ROOT_ID_MARK ROOT_ID)
    and rsync's version line, each on a line of its own; with `sweep`, also remove
    everything in RSYNC_TMP (rsync's partial temp files, write_meta's), the `.mirrord/
    .meta.*` temp files older versions wrote and other opens' witnesses. Exit 1 when the
    root cannot be made."""
    # .mirrord/ and its temp area are made one component at a time in the root, a symlink
    # or file standing there replaced (MKDIRS): mirrord's own area is never a user's, and
    # one planted at .mirrord led the sweep below (it empties the temp area) outside the root
    mine = witness(token)
    script = (b"if ! [ -e %s ] || { cd -- %s 2>/dev/null && %s; }; then echo %s; fi\n"
              % (q(root), q(root), HOLDS_NOTHING, ROOT_EMPTY)
              + b"mkdir -p -- %s && cd -- %s || exit 1\n" % (q(root), q(root)) + MKDIRS
              + b"mkdirs ./%s || exit 1\n" % RSYNC_TMP
              + b': > %s || exit 1\n' % mine
              + b'echo "%s %s"\n' % (ROOT_ID_MARK, ROOT_ID))
    if sweep:
        script += (b"find ./%s -mindepth 1 -delete || exit 1\n"
                   b"rm -f -- ./.mirrord/.meta.*\n"
                   b'for f in .mirrord/open-*; do [ "$f" = %s ] || rm -f -- "$f"; done\n'
                   % (RSYNC_TMP, mine))
    return script + b"%s --version | head -n 1" % rsync_path


class RootGuard:
    """What the target learnt of its root at its last writable open, and the shell that
    checks it. `root` is the root's path on the host (bytes)."""

    def __init__(self, root: bytes):
        self.root = root
        self.root_id: bytes | None = None   # None: not opened for writing, nothing checked
        self.found_empty = False
        self.awaiting = False
        self.token = secrets.token_hex(8)   # the witness of the next (or last) open

    def learn(self, stdout: bytes, *, target: str = "") -> None:
        """Take prepare_script's answer (its stdout). A host whose `stat` has no `-c` (not
        GNU coreutils or busybox) prints no device number: only the witness then tells
        the opened root from a bare mount point (a root emptied and made again on another
        file system passes), and a warning says so, once per open."""
        m = _ID_LINE.search(stdout)
        self.root_id = m.group(1) if m else None
        self.found_empty = ROOT_EMPTY in stdout.splitlines()
        self.awaiting = False
        if self.root_id is not None and not self.root_id.rstrip(b"m"):
            log.warning(kv(msg="the mirror host printed no device number for the target root "
                               "(`stat -c %d` failed there): only this open's witness file "
                               "tells the root from a bare mount point; install GNU "
                               "coreutils on the mirror host", target=target,
                           root=self.root.decode(errors="replace")))

    def forget(self) -> None:
        """A read-only open, or one about to learn again: nothing is checked; the next
        open leaves a witness of its own."""
        self.root_id, self.found_empty, self.awaiting = None, False, False
        self.token = secrets.token_hex(8)

    def shell(self) -> bytes:
        """The check, run cd'ed into the root; b"" before a writable open."""
        if self.root_id is None:
            return b""
        if self.awaiting:   # one find per command, only until the next open
            return b'! { %s; } || { echo "%s" >&2; exit %d; }\n' % (
                HOLDS_NOTHING, HOLDS_NOTHING_YET, EXIT_NO_ROOT)
        return (b'{ ! [ -L .mirrord ] && [ -f %s ]; } || [ "%s" = "%s" ] || '
                b'{ echo "%s" >&2; exit %d; }\n'
                % (witness(self.token), ROOT_ID, self.root_id, NOT_OPENED, EXIT_NO_ROOT))

    def rsync_path(self, rsync_path: bytes) -> bytes | None:
        """--rsync-path starting `rsync_path` (the receiver; rsync appends its --server
        arguments) only once the check passes; None before a writable open."""
        check = self.shell()
        if not check:
            return None
        return (b"sh -c 'cd -- \"$1\" || { echo \"cannot cd into the target root\" >&2; "
                b"exit %d; }\n" % EXIT_NO_ROOT + check + b"' sh " + q(self.root) + b" && "
                + rsync_path)
