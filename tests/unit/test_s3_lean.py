"""The lean PutObject/DeleteObject path's own logic, against a scripted loopback HTTP server.

The server here only plays back answers (status, body, whether to drop the
connection); the signed requests are checked against a real SeaweedFS in
tests/integration/test_s3_target.py and by the conformance suite.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections import deque

import pytest
import boto3
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from mirrord.errors import RetryableError
from mirrord.targets.s3 import S3Target, classify
from mirrord.targets.s3.lean import LeanRequests, _proxy_applies, headers_from_args
from tests.answer_proxy import read_request

SLOW_DOWN = (b"<?xml version='1.0'?><Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")


class ScriptedServer:
    """Answers each request with the next scripted (status, body, close) or drops it."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.tls = tls
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script: deque = deque()
        self.requests: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()                # the client did not trust the certificate
                return
        with conn:
            buf = b""
            while True:
                request = read_request(conn, buf)
                if request is None:
                    return
                head, body, buf = request
                self.requests.append(head)
                self.bodies.append(body)
                action = self.script.popleft() if self.script else ("ok",)
                if action[0] == "drop":
                    return
                status, body, close = (200, b"", False) if action[0] == "ok" else action[1:]
                headers = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}",
                           'ETag: "abc"']
                if close:
                    headers.append("Connection: close")
                conn.sendall(("\r\n".join(headers) + "\r\n\r\n").encode() + body)
                if close:
                    return

    def close(self):
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)   # wakes accept(); close() alone would not
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


SECRET = "secret-example"


def lean(port: int) -> LeanRequests:
    return LeanRequests(scheme="http", host="127.0.0.1", port=port, base_path="/bucket/",
                    credentials=Credentials("AKIDEXAMPLE", SECRET), region="us-east-1",
                    connect_timeout=2, read_timeout=2)


def test_success_returns_the_etag_and_keeps_the_connection(server):
    put = lean(server.port)
    assert put.put("a/b c+%.txt", b"x", {"Content-Type": "text/plain"}) == '"abc"'
    assert put.put("a/2", b"y", {}) == '"abc"'
    assert server.connections == 1
    first = server.requests[0].split(b"\r\n")
    assert first[0] == b"PUT /bucket/a/b%20c%2B%25.txt HTTP/1.1"
    names = {line.split(b":")[0].lower() for line in first[1:]}
    assert {b"authorization", b"x-amz-date", b"x-amz-content-sha256", b"host"} <= names


def test_delete_is_a_signed_delete_without_a_body(server):
    put = lean(server.port)
    server.script.append(("err", 204, b"", False))
    assert put.delete("dir/gone file.txt") is True
    head = server.requests[0].split(b"\r\n")
    assert head[0] == b"DELETE /bucket/dir/gone%20file.txt HTTP/1.1"
    headers = dict(line.split(b": ", 1) for line in head[1:])
    assert b"Content-Length" not in headers and b"Authorization" in headers
    server.script.append(("err", 404, b"<Error><Code>NoSuchBucket</Code></Error>", False))
    assert put.delete("x") is False                      # the SDK says what that means
    server.script.append(("err", 503, SLOW_DOWN, False))
    with pytest.raises(ClientError) as info:
        put.delete("x")
    assert info.value.operation_name == "DeleteObject"


def test_a_digest_the_caller_has_is_signed_not_recomputed(server):
    import hashlib
    body = b"payload"
    put = lean(server.port)
    put.put("a", body, {})
    put.put("b", body, {}, sha256="0" * 64)        # what the caller says is what is signed
    sent = [{k.lower(): v for k, v in (line.split(b": ", 1) for line in r.split(b"\r\n")[1:])}
            for r in server.requests]   # header names are case-insensitive (RFC 9110 5.1)
    assert sent[0][b"x-amz-content-sha256"] == hashlib.sha256(body).hexdigest().encode()
    assert sent[1][b"x-amz-content-sha256"] == b"0" * 64


def test_retry_later_answers_become_client_errors_the_classifier_retries(server):
    server.script.append(("err", 503, SLOW_DOWN, False))
    with pytest.raises(ClientError) as info:
        lean(server.port).put("k", b"x", {})
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert isinstance(classify(info.value, "put k"), RetryableError)


@pytest.mark.parametrize("status", [301, 400, 403, 404])
def test_any_other_answer_is_left_to_the_full_client(server, status):
    server.script.append(("err", status, b"<Error><Code>Whatever</Code></Error>", False))
    assert lean(server.port).put("k", b"x", {}) is None


def test_exists_is_a_signed_head_answered_by_its_status(server):
    """200: an object stands there; 404: none; 403 or a redirect: the full client asks
    (S3 answers 403 for a missing key without s3:ListBucket); 503: retry later."""
    req = lean(server.port)
    server.script.extend([("err", 200, b"", False), ("err", 404, b"", False),
                          ("err", 403, b"", False), ("err", 301, b"", False),
                          ("err", 503, b"", False)])
    assert req.exists("dir/a file") is True
    assert req.exists("x") is False
    assert req.exists("x") is None
    assert req.exists("x") is None
    with pytest.raises(ClientError) as info:
        req.exists("x")
    assert info.value.operation_name == "HeadObject"
    assert isinstance(classify(info.value, "stat x"), RetryableError)
    head = server.requests[0].split(b"\r\n")
    assert head[0] == b"HEAD /bucket/dir/a%20file HTTP/1.1"
    names = {line.split(b":")[0].lower() for line in head[1:]}
    assert b"authorization" in names and b"content-length" not in names
    assert server.connections == 1                  # every answer read whole: one connection


def test_a_stale_kept_alive_connection_is_replaced_once(server):
    put = lean(server.port)
    put.put("1", b"x", {})
    server.script.append(("drop",))           # the server closed the idle connection
    assert put.put("2", b"x", {}) == '"abc"'
    assert server.connections == 2


def test_a_fresh_connection_failing_is_retryable_not_retried(server):
    server.script.extend([("drop",), ("drop",)])
    with pytest.raises(RetryableError):
        lean(server.port).put("1", b"x", {})
    assert len(server.requests) == 1


def test_connection_close_is_honoured(server):
    put = lean(server.port)
    server.script.append(("err", 200, b"", True))
    put.put("1", b"x", {})
    put.put("2", b"x", {})
    assert server.connections == 2


def test_nothing_listening_is_retryable(server):
    port = server.port
    server.close()
    with pytest.raises(RetryableError, match=r"connect failed \(PUT to 127.0.0.1:\d+\)"):
        lean(port).put("1", b"x", {})


def test_headers_from_sdk_arguments():
    args = {"ContentType": "image/png", "Metadata": {"mtime": "1.5", "sha256": "ab"},
            "ACL": "private", "StorageClass": "STANDARD_IA"}
    assert headers_from_args(args) == {
        "Content-Type": "image/png", "x-amz-meta-mtime": "1.5", "x-amz-meta-sha256": "ab",
        "x-amz-acl": "private", "x-amz-storage-class": "STANDARD_IA"}
    with pytest.raises(KeyError):
        headers_from_args({"ContentMD5": "x"})    # an argument nobody mapped is a bug, loudly


def test_a_proxy_for_the_endpoint_leaves_puts_to_the_sdk(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert not _proxy_applies("http", "s3.example.test")
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:3128")
    assert _proxy_applies("http", "s3.example.test")
    monkeypatch.setenv("no_proxy", "s3.example.test")
    assert not _proxy_applies("http", "s3.example.test")
    assert not _proxy_applies("http", "s3.example.test:8333")
    monkeypatch.setenv("no_proxy", "s3.example.test:8333")     # host:port, as botocore reads it
    assert not _proxy_applies("http", "s3.example.test:8333")
    assert _proxy_applies("http", "s3.example.test:9000")


def test_a_no_proxy_entry_with_a_port_keeps_the_lean_path(monkeypatch):
    """The target's own endpoint check: NO_PROXY naming the endpoint's host:port means
    botocore goes direct, so the lean path is made too."""
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1:8333")
    client = boto3.session.Session().client(
        "s3", endpoint_url="http://127.0.0.1:8333", region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}))
    req = LeanRequests.for_client(client, Credentials("AKIDEXAMPLE", SECRET), "bucket",
                                  connect_timeout=2, read_timeout=2)
    assert req is not None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1:9999")
    assert LeanRequests.for_client(client, Credentials("AKIDEXAMPLE", SECRET), "bucket",
                                   connect_timeout=2, read_timeout=2) is None


def test_the_target_builds_the_lean_path_from_the_clients_own_url():
    from mirrord.config import S3Options
    t = S3Target("t", S3Options(bucket="b", endpoint_url="http://127.0.0.1:9", region="eu-west-1",
                                access_key_id="AK", secret_access_key="SK",
                                addressing_style="path"))
    t.client  # noqa: B018 - builds client and lean path, no network
    assert t._lean is not None
    assert (t._lean.host, t._lean.port, t._lean.base_path, t._lean.region) == \
        ("127.0.0.1", 9, "/b/", "eu-west-1")
    t.close()
    v = S3Target("v", S3Options(bucket="mybucket", region="eu-west-1", access_key_id="AK",
                                secret_access_key="SK", addressing_style="virtual"))
    v.client  # noqa: B018
    assert v._lean is not None and v._lean.scheme == "https" and v._lean.port is None
    assert (v._lean.host, v._lean.base_path) == ("mybucket.s3.eu-west-1.amazonaws.com", "/")
    v.close()


def _headers(raw: bytes) -> dict[bytes, bytes]:
    fields = (line.partition(b":") for line in raw.split(b"\r\n")[1:])
    return {k.lower(): v.strip() for k, _, v in fields}


def test_options_do_not_leak_from_one_request_to_the_next_on_a_handle(server):
    """One thread, one curl handle: DELETE, HEAD, PUT, then HEAD and DELETE again; each
    goes out as itself (no body left from the PUT, no NOBODY left from the HEAD)."""
    req = lean(server.port)
    assert req.delete("d") is True
    assert req.exists("h") is True
    assert req.put("p", b"body!", {}) == '"abc"'
    assert req.put("q", b"", {"Content-Type": "text/plain"}) == '"abc"'
    assert req.exists("h2") is True
    assert req.delete("d2") is True
    lines = [r.split(b"\r\n", 1)[0] for r in server.requests]
    assert lines == [b"DELETE /bucket/d HTTP/1.1", b"HEAD /bucket/h HTTP/1.1",
                     b"PUT /bucket/p HTTP/1.1", b"PUT /bucket/q HTTP/1.1",
                     b"HEAD /bucket/h2 HTTP/1.1", b"DELETE /bucket/d2 HTTP/1.1"]
    sent = [_headers(r) for r in server.requests]
    assert server.bodies == [b"", b"", b"body!", b"", b"", b""]
    assert [h.get(b"content-length") for h in sent] == [None, None, b"5", b"0", None, None]
    assert b"content-type" not in sent[2]                 # no form type libcurl would add
    assert sent[3][b"content-type"] == b"text/plain"
    assert not any(b"expect" in h for h in sent)          # no 100-continue round trip
    assert server.connections == 1


def test_an_empty_header_value_is_sent_as_signed(server):
    assert lean(server.port).put("k", b"x", {"x-amz-meta-empty": ""}) == '"abc"'
    assert _headers(server.requests[0]).get(b"x-amz-meta-empty") == b""


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 made by the openssl CLI: (cert, key)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    s = ScriptedServer(tls=context)
    yield s
    s.close()


def _https_lean(port: int, ca_bundle: str) -> LeanRequests:
    """The lean path as the target makes it, for an https endpoint on `port`."""
    client = boto3.session.Session().client(
        "s3", endpoint_url=f"https://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}))
    req = LeanRequests.for_client(client, Credentials("AKIDEXAMPLE", SECRET), "bucket",
                                  connect_timeout=2, read_timeout=2, ca_bundle=ca_bundle)
    assert req is not None and req.scheme == "https"
    return req


def test_https_trusts_the_configured_ca_bundle_and_nothing_else(tls_server, certificate,
                                                                monkeypatch):
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    trusted = _https_lean(tls_server.port, str(certificate[0]))
    assert trusted.put("a b", b"x", {}) == '"abc"'
    assert trusted.exists("a b") is True
    assert tls_server.requests[0].split(b"\r\n", 1)[0] == b"PUT /bucket/a%20b HTTP/1.1"
    trusted.close()
    untrusted = _https_lean(tls_server.port, "")        # the system's bundle: not this cert
    assert untrusted.ca_file == ssl.get_default_verify_paths().cafile
    with pytest.raises(RetryableError, match=f"TLS .*127.0.0.1:{tls_server.port}") as info:
        untrusted.put("a", b"x", {})
    assert SECRET not in str(info.value) and "Authorization" not in str(info.value)
    assert len(tls_server.requests) == 2                # nothing sent to an untrusted peer


def test_without_a_system_bundle_file_the_systems_certificate_directory_is_trusted(
        tls_server, certificate, tmp_path, monkeypatch):
    """Where OpenSSL finds no bundle file (get_default_verify_paths().cafile is None) the
    system's hashed directory is used, as Python's default context (what http.client
    trusted) does; not the wheel's own libcurl default, which may name a file this
    system lacks."""
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    hashed = tmp_path / "certs"
    hashed.mkdir()
    (hashed / "ours.pem").write_bytes(certificate[0].read_bytes())
    subprocess.run(["openssl", "rehash", str(hashed)], check=True, capture_output=True)
    paths = ssl.get_default_verify_paths()
    monkeypatch.setattr(ssl, "get_default_verify_paths",
                        lambda: paths._replace(cafile=None, capath=str(hashed)))
    req = _https_lean(tls_server.port, "")
    assert (req.ca_file, req.ca_dir) == (None, str(hashed))
    try:
        assert req.put("k", b"x", {}) == '"abc"'
    finally:
        req.close()


def test_a_server_that_never_answers_times_out_as_retryable():
    silent = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
    req = LeanRequests(scheme="http", host="127.0.0.1", port=silent.getsockname()[1],
                       base_path="/b/", credentials=Credentials("AKIDEXAMPLE", SECRET),
                       region="us-east-1", connect_timeout=2, read_timeout=1)
    began = time.monotonic()
    try:
        with pytest.raises(RetryableError, match="timed out"):
            req.put("k", b"x", {})
        assert time.monotonic() - began < 5
    finally:
        req.close()
        for conn, _ in held:
            conn.close()
        silent.close()


def test_no_raised_error_carries_the_secret_or_a_header(server):
    """Every kind of failure this path raises: its message names the failure and the
    host, never the secret key, the signature or any header."""
    errors: list[BaseException] = []
    req = lean(server.port)
    server.script.extend([("drop",), ("err", 503, SLOW_DOWN, False),
                          ("err", 412, b"", False), ("err", 429, b"", False)])
    for call in (lambda: req.put("k", b"x", {}), lambda: req.put("k", b"x", {}),
                 lambda: req.put("k", b"x", {"If-None-Match": "*"}), lambda: req.delete("k")):
        with pytest.raises((RetryableError, ClientError)) as info:
            call()
        errors.append(info.value)
    port = server.port
    server.close()
    with pytest.raises(RetryableError) as info:
        lean(port).exists("k")
    errors.append(info.value)
    # a put read whole and closed with no answer may be stored (errors.MaybeStored)
    assert [type(e).__name__ for e in errors] == ["MaybeStored", "ClientError", "ClientError",
                                                  "ClientError", "RetryableError"]
    for error in errors:
        text = f"{error} {error!r}"
        for secret in (SECRET, "Authorization", "Signature=", "AWS4-HMAC", "x-amz-date"):
            assert secret.lower() not in text.lower(), text
    assert "empty reply" in str(errors[0]) and f"127.0.0.1:{port}" in str(errors[0])


def test_a_sent_body_is_not_held_by_the_handle_after_the_put(server):
    """pycurl keeps the bytes given as POSTFIELDS: without their release every worker
    would hold its last body (up to 8 MiB) until its next put. A failed put too."""
    import sys
    req = lean(server.port)
    body = b"x" * (1 << 20)
    before = sys.getrefcount(body)
    assert req.put("k", body, {}) == '"abc"'
    assert sys.getrefcount(body) == before
    server.script.append(("drop",))
    server.script.append(("drop",))
    with pytest.raises(RetryableError):
        req.put("k2", body, {})
    assert sys.getrefcount(body) == before
