"""A replica that stops answering in the middle of a statement (its host stopped, a
partition that drops packets: no FIN, no RST) must not hold mirrord: /ready says so and
recovers once the replica answers again, and `mirrord failover --dry-run` returns.

statement_timeout is the server's; such a server enforces nothing. A measurement thread
once blocked in recv(2) for good, and /ready stayed 503 after the replica was back.
Between mirrord and the real replica sits a TCP proxy that, while stalled, forwards a
connection's handshake and then nothing from its first query on."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.integration.test_failover_health import Service
from tests.integration.test_failover_procedure import Site, _output, site  # noqa: F401 (fixture)


class StallingProxy:
    """127.0.0.1:port -> the replica; while `stalled` is set, a connection's first query
    message ('Q' simple, 'P' extended protocol) and everything after it is swallowed."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.stalled = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [client, server]
            dead = threading.Event()          # set once this connection stalled
            threading.Thread(target=self._pump, args=(server, client, dead, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(client, server, dead, True),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, dead: threading.Event,
              from_client: bool) -> None:
        state = {"startup": True, "header": b"", "skip": 0}
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if from_client and not dead.is_set():
                cut = self._query_start(data, state)
                if cut is not None:
                    dead.set()
                    data = data[:cut]
            if dead.is_set() and not from_client:
                continue                      # the server's answers are lost too
            try:
                dst.sendall(data)
            except OSError:
                return
            if dead.is_set():
                while src.recv(65536):        # swallow the rest; never close
                    pass
                return

    def _query_start(self, data: bytes, st: dict) -> int | None:
        """Offset in `data` of a query message while stalled (frontend protocol framing:
        an untyped startup message, then type byte + int32 length)."""
        i = 0
        while i < len(data):
            if st["skip"]:
                n = min(st["skip"], len(data) - i)
                i, st["skip"] = i + n, st["skip"] - n
                continue
            need = 4 if st["startup"] else 5
            start = i - len(st["header"])
            take = min(need - len(st["header"]), len(data) - i)
            st["header"] += data[i:i + take]
            i += take
            if len(st["header"]) < need:
                break
            header, st["header"] = st["header"], b""
            if st["startup"]:
                st["startup"], st["skip"] = False, int.from_bytes(header[:4], "big") - 4
                continue
            if self.stalled.is_set() and header[:1] in (b"Q", b"P"):
                return max(0, start)
            st["skip"] = int.from_bytes(header[1:5], "big") - 4
        return None

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


@pytest.fixture
def proxied(site: Site, pg):
    proxy = StallingProxy(pg.replica.port)
    conninfo = pg.replica_conninfo.replace(f"port={pg.replica.port}", f"port={proxy.port}")
    site.configure(database=f"{conninfo} sslmode=disable gssencmode=disable",
                   connect_timeout="1s", statement_timeout="1s")
    yield proxy
    proxy.close()


def test_ready_recovers_after_the_replica_stopped_answering_mid_statement(site, proxied):
    svc = Service(site)
    try:
        svc.wait_ready(200)
        proxied.stalled.set()
        doc = svc.wait_ready(503)
        assert not doc["ready"]
        proxied.stalled.clear()            # the replica answers new connections again
        svc.wait_ready(200, timeout=30)
    finally:
        svc.close()


def test_failover_dry_run_returns_when_the_replica_stops_answering(site, proxied, capsys):
    proxied.stalled.set()
    codes: list[int] = []
    worker = threading.Thread(target=lambda: codes.append(site.run("failover", "--dry-run")),
                              daemon=True)
    worker.start()
    worker.join(60)                        # a bound, not a timing: the run must return
    assert codes == [3], _output(capsys)
    out = _output(capsys)
    assert "FAIL          replica.connect" in out and "no answer within 2s" in out
