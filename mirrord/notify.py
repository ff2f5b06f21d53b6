"""The sd_notify protocol: tell systemd we are ready, alive, reloading or stopping.

systemd passes a datagram socket in $NOTIFY_SOCKET (a filesystem path, or an
abstract-namespace name written with a leading '@'); each message is one
datagram of newline-separated KEY=VALUE assignments. Without the variable
(a plain foreground run) every call is a no-op, and a send error never
reaches the caller: the daemon must not die because systemd went away.
The protocol is a dozen lines, so it is written here rather than pulled in.
"""

from __future__ import annotations

import logging
import os
import socket

from mirrord.logsetup import redact

log = logging.getLogger("mirrord.notify")

READY = "READY=1"
WATCHDOG = "WATCHDOG=1"
STOPPING = "STOPPING=1"
RELOADING = "RELOADING=1"

_warned = False


def status(text: str) -> str:
    """A STATUS= line as systemctl status shows it (one line: newlines would end the
    assignment), redacted: `systemctl status` shows it to any user of the host."""
    return "STATUS=" + redact(" ".join(text.split()))


def _address(raw: str) -> str | bytes:
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace: leading NUL, not NUL-terminated
    return raw


def notify(*states: str, env: dict[str, str] | None = None) -> bool:
    """Send the states as one datagram; True when sent, False when not under systemd or on error."""
    raw = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not raw or not states:
        return False
    if raw[0] not in "/@":
        _log_once(f"NOTIFY_SOCKET={raw!r} is neither a path nor an abstract name")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(states).encode(), _address(raw))
    except OSError as exc:
        _log_once(f"sd_notify to {raw} failed: {exc}")
        return False
    return True


def _log_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.debug("%s (further notify errors are not logged)", message)


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is asked for.

    WATCHDOG_PID, when set, names the process the watchdog is meant for: a child
    that inherited the environment must not answer for its parent.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2
