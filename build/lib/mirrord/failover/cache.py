"""memcached: flush every listed server on its own and prove it worked.

Each server gets its own plain pymemcache client (never a hashing client,
which would hide a dead server behind its neighbours). A sentinel key is set
and read back before flush_all and must be gone after it, so a server that
accepted the command but kept its items is caught too. A server that is down,
or started with -F (flush_all disabled), is reported by name; the others are
still flushed.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheError

TIMEOUT = 3.0


@dataclass(frozen=True)
class FlushResult:
    server: str
    ok: bool
    detail: str


def name(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def flush_server(host: str, port: int, *, timeout: float = TIMEOUT) -> FlushResult:
    server = name(host, port)
    client = Client((host, port), connect_timeout=timeout, timeout=timeout, default_noreply=False)
    key = f"mirrord-failover-sentinel-{secrets.token_hex(8)}"
    try:
        return FlushResult(server, *_flush_and_verify(client, key))
    except MemcacheClientError as exc:
        return FlushResult(server, False, f"refused: {_text(exc)} (flush_all disabled with -F?)")
    except (MemcacheError, OSError, socket.timeout) as exc:
        return FlushResult(server, False, f"unreachable: {exc}")
    finally:
        client.close()


def _flush_and_verify(client: Client, key: str) -> tuple[bool, str]:
    if not client.set(key, b"1", expire=600, noreply=False) or client.get(key) != b"1":
        return False, "could not set the sentinel key before flushing"
    if not client.flush_all(noreply=False):
        return False, "flush_all was not acknowledged"
    if client.get(key) is not None:
        client.delete(key, noreply=True)
        return False, "the sentinel key survived flush_all"
    return True, "flushed; sentinel key set before is gone"


def _text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def flush_command(host: str, port: int) -> str:
    """How to flush this server by hand."""
    return f"printf 'flush_all\\r\\nquit\\r\\n' | nc {host} {port}"
