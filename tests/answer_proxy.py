"""A TCP proxy in front of a real HTTP server (SeaweedFS) that loses answers: a request
whose request line matches `lose` is passed on whole, and nothing the server sends back
on that connection from then on reaches the client, which sees its request sent and no
answer (the S3 target's MaybeStored: a put the server may have stored). close() makes
the port refuse connections and cuts every one open. read_request reads one request whole,
for this proxy's canned answers and for the fake servers of other tests."""

from __future__ import annotations

import re
import socket
import threading
from typing import Callable


def read_request(sock: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes, bytes] | None:
    """One HTTP/1.1 request from `sock`, after `buf` (bytes of it already read): (head,
    body, what came after the body), the body being Content-Length bytes (none without
    the header); None when the peer closes before it is whole. Raises what recv raises."""
    while b"\r\n\r\n" not in buf:
        part = sock.recv(65536)
        if not part:
            return None
        buf += part
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)^content-length:\s*(\d+)", head, re.MULTILINE)
    want = int(length.group(1)) if length else 0
    while len(rest) < want:
        part = sock.recv(65536)
        if not part:
            return None
        rest += part
    return head, rest[:want], rest[want:]


class AnswerLosingProxy:
    """127.0.0.1:`port` -> 127.0.0.1:`upstream`. `lose`: a bytes regex searched in what the
    client sends (None: lose nothing); `lost`: how many requests had their answer lost;
    `then_refuse`: once an answer is lost, refuse new connections and cut every other one
    (a server that went away after storing: a client's retry is refused); `crash`: once
    the server answers a request whose answer is lost, refuse new connections and cut
    every one, that request's too (a gateway restarted between storing and answering)."""

    def __init__(self, upstream: int, lose: re.Pattern[bytes] | None = None):
        self.upstream = upstream
        self.lose = lose
        self.lost = 0
        self.then_refuse = False
        self.crash = False
        # once an answer is lost: each later request is read whole and answered this
        # instead of reaching the server (an error answer to a client's retry)
        self.then_answer: bytes | None = None
        self.on_lose: Callable[[], None] | None = None   # called as an answer is lost
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.then_answer is not None and self.lost:
                threading.Thread(target=self._answer, args=(client, self.then_answer),
                                 daemon=True).start()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._sockets += [client, server]
            dead = threading.Event()    # set once a request of this connection matched
            threading.Thread(target=self._pump, args=(client, server, dead, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, dead, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, dead: threading.Event,
              from_client: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if from_client and not dead.is_set() and self.lose is not None \
                    and self.lose.search(data):
                dead.set()
                with self._lock:
                    self.lost += 1
                if self.on_lose is not None:
                    self.on_lose()
                if self.then_refuse:
                    self.close(keep=(src, dst))
            if dead.is_set() and not from_client:
                if self.crash:            # stored and answered: the gateway goes away
                    threading.Thread(target=self.close, daemon=True).start()
                    return
                continue                  # the answer (and all after it) is lost
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _answer(client: socket.socket, answer: bytes) -> None:
        """Read one request whole (read_request), send `answer`."""
        try:
            if read_request(client) is None:
                return
            client.sendall(answer)
        except OSError:
            pass
        finally:
            client.close()

    def close(self, keep: tuple[socket.socket, ...] = ()) -> None:
        """Refuse new connections and cut the open ones (but those in `keep`)."""
        try:   # wakes the accept() blocked on it (close() alone leaves it listening)
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self._lock:
            for s in self._sockets:
                if s in keep:
                    continue
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
