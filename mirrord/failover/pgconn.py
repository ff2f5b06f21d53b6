"""A psycopg connection whose every statement has a client-side deadline.

statement_timeout is enforced by the server: a server that stops answering
altogether (its host stopped, a network partition that drops packets without
a FIN or RST) leaves the client blocked in recv(2) for as long as TCP
keepalive takes, two hours by the kernel's default. In `mirrord health` that
was one measurement thread blocked for good, and /ready a 503 long after the
replica answered again (runner.py never starts a second run while one hangs);
in `mirrord failover` it was a command that never returned. Here a statement
that has not answered within `answer_timeout` seconds has its socket shut
down (shutdown(2) on a duplicate of libpq's descriptor), which makes libpq's
read return and psycopg raise; the error then says what happened.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading

import psycopg

DEFAULT_ANSWER_TIMEOUT = 6.0    # seconds: statement_timeout's default 5 s + 1 s


class BoundedConnection(psycopg.Connection):
    """psycopg.Connection whose execute() gives up after `answer_timeout` seconds."""

    answer_timeout: float = DEFAULT_ANSWER_TIMEOUT

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        with answer_deadline(self, self.answer_timeout):
            return super().execute(query, params, **kwargs)


@contextlib.contextmanager
def answer_deadline(conn: psycopg.Connection, seconds: float):
    """Shut `conn`'s socket down if the block is still waiting after `seconds`; the
    psycopg.Error that follows is raised as OperationalError saying so."""
    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    fired = threading.Event()

    def give_up() -> None:
        fired.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    except psycopg.Error as exc:
        if fired.is_set():
            raise psycopg.OperationalError(
                f"no answer within {seconds:g}s (statement_timeout + 1 s): the server "
                "stopped answering; connection closed") from exc
        raise
    finally:
        timer.cancel()
        timer.join()
        sock.close()      # the duplicate only: libpq's own descriptor stays its own
