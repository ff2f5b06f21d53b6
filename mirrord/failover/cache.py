"""memcached: flush every listed server on its own and prove it worked.

Each server gets its own plain pymemcache client (never a hashing client,
which would hide a dead server behind its neighbours). A sentinel key is set
and read back before flush_all and must be gone after it, so a server that
accepted the command but kept its items is caught too. A server that is down,
or started with -F (flush_all disabled), is reported by name; the others are
still flushed.

A server is (host, port) over TCP or an absolute UNIX socket path (memcached
-s); pymemcache's Client takes either form, and the same sentinel proof runs
over both.

Each server's whole exchange (connect, set, get, flush_all, get) is bounded by one
deadline, [failover] connect_timeout (default 5 s): pymemcache's own timeouts bound
each socket operation only, and a server sending one byte a second never let one
expire, holding `mirrord failover` for good after the flip and before the reload
(a breaker). A server past the deadline is a failed step like a dead one.
"""

from __future__ import annotations

import secrets
import shlex
import contextlib
import socket
import threading
from dataclasses import dataclass

from pymemcache.client.base import Client
from pymemcache.exceptions import (MemcacheClientError, MemcacheError, MemcacheServerError,
                                   MemcacheUnexpectedCloseError, MemcacheUnknownError)

TIMEOUT = 5.0        # seconds: [failover] connect_timeout's default

Server = tuple[str, int] | str     # (host, port) or an absolute UNIX socket path


@dataclass(frozen=True)
class FlushResult:
    server: str
    ok: bool
    detail: str


def name(server: Server) -> str:
    """'host:port', '[v6addr]:port' or 'unix:/path' (the form memcached tools print)."""
    if isinstance(server, str):
        return f"unix:{server}"
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def flush_server(server: Server, *, timeout: float = TIMEOUT) -> FlushResult:
    """flush_all on one server (a Server), proven with a sentinel key, all within `timeout`
    seconds (float; the caller passes [failover] connect_timeout).

    Returns a FlushResult; never raises for a dead, refusing, slow or non-memcached
    server: each is ok=False with why. The exchange runs on a daemon thread; at the
    deadline its socket is shut down (the thread then ends) and the result says so."""
    label = name(server)
    client = Client(server, connect_timeout=timeout, timeout=timeout, default_noreply=False)
    answer: list[FlushResult] = []
    worker = threading.Thread(target=lambda: answer.append(_flush(client, label)),
                              name=f"memcached-{label}", daemon=True)
    worker.start()
    worker.join(timeout)
    if answer:
        return answer[0]
    sock = client.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return FlushResult(label, False, f"no whole answer within {timeout:g}s (connect_timeout): "
                                     "the server is too slow or not memcached")


def _flush(client: Client, label: str) -> FlushResult:
    key = f"mirrord-failover-sentinel-{secrets.token_hex(8)}"
    try:
        return FlushResult(label, *_flush_and_verify(client, key))
    except MemcacheClientError as exc:
        return FlushResult(label, False, f"refused: {_text(exc)} (flush_all disabled with -F?)")
    except MemcacheUnknownError:
        # its message quotes the server's bytes: not shown (whatever answered is no memcached)
        return FlushResult(label, False, "protocol error: the answer is not memcached's "
                                         "(is this address a memcached server?)")
    except MemcacheUnexpectedCloseError:
        return FlushResult(label, False, "unreachable: the server closed the connection")
    except MemcacheServerError as exc:   # SERVER_ERROR <text>: memcached's own words
        return FlushResult(label, False, f"server error: {_text(exc)[:200]}")
    except (MemcacheError, OSError, socket.timeout) as exc:
        return FlushResult(label, False, f"unreachable: {exc}")
    except Exception as exc:   # noqa: BLE001 (a parse error on odd bytes: the step says so)
        return FlushResult(label, False, f"protocol error: {type(exc).__name__}")
    finally:
        client.close()


def _flush_and_verify(client: Client, key: str) -> tuple[bool, str]:
    """(ok, detail). A sentinel that cannot be set (a full server started with -M answers
    SERVER_ERROR out of memory) still gets the flush sent, ok False: the stale pages of a
    full cache are the likeliest to be served, and returning before flush_all left them
    all there (a trial); the step then says the flush is not proven."""
    try:
        unset = (None if client.set(key, b"1", expire=600, noreply=False)
                 and client.get(key) == b"1" else "it was not stored")
    except MemcacheServerError as exc:
        unset = f"server error: {_text(exc)[:200]}"
    if not client.flush_all(noreply=False):
        return False, "flush_all was not acknowledged"
    if unset is not None:
        return False, (f"flush_all sent and acknowledged, not proven: the sentinel key could "
                       f"not be set before it ({unset})")
    if client.get(key) is not None:
        client.delete(key, noreply=True)
        return False, "the sentinel key survived flush_all"
    return True, "flushed; sentinel key set before is gone"


def _text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def flush_command(server: Server) -> str:
    """How to flush this server by hand, with netcat-openbsd (nc -U for a UNIX socket;
    nc takes an IPv6 address without brackets)."""
    send = "printf 'flush_all\\r\\nquit\\r\\n' | nc"
    if isinstance(server, str):
        return f"{send} -U {shlex.quote(server)}"
    host, port = server
    return f"{send} {shlex.quote(host)} {port}"
