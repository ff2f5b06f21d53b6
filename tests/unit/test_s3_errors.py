"""How the S3 target classifies failures, with botocore exceptions built by hand (no network).

Also the checks S3Target makes before sending anything: names S3 cannot hold,
and that no credential ever reaches an exception message.
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError,
                                 CredentialRetrievalError, EndpointConnectionError,
                                 IncompleteReadError, NoCredentialsError, ParamValidationError,
                                 ReadTimeoutError, ResponseStreamingError)
from urllib3.exceptions import ProtocolError

from mirrord.config import S3Options
from mirrord.errors import PermanentError, RetryableError
from mirrord.targets.mtime import exact_ns, parse_ns
from mirrord.targets.s3 import (S3Target, classify, content_type, format_mode, format_mtime,
                                parse_mode)

ACCESS = "AKIAEXAMPLEACCESS123"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SIGNATURE = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"


def client_error(code: str, status: int, message: str = "boom", op: str = "PutObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


def target(**kw) -> S3Target:
    opts = S3Options(bucket="bucket", prefix="up/", endpoint_url="http://127.0.0.1:9",
                     access_key_id=ACCESS, secret_access_key=SECRET, **kw)
    return S3Target("s3", opts, workers=4)


@pytest.mark.parametrize("code,status", [
    ("SlowDown", 503), ("Throttling", 400), ("ThrottlingException", 400),
    ("RequestTimeout", 400), ("InternalError", 500), ("ServiceUnavailable", 503),
    ("", 502), ("SomethingNew", 504), ("TooManyRequests", 429), ("", 408),
])
def test_throttling_timeouts_and_5xx_are_retryable(code, status):
    assert isinstance(classify(client_error(code, status), "here"), RetryableError)


@pytest.mark.parametrize("code,status", [
    ("NoSuchBucket", 404), ("AccessDenied", 403), ("InvalidAccessKeyId", 403),
    ("SignatureDoesNotMatch", 403), ("KeyTooLongError", 400), ("InvalidArgument", 400),
    ("EntityTooLarge", 400), ("InvalidBucketName", 400), ("", 400),
])
def test_refusals_are_permanent(code, status):
    err = classify(client_error(code, status), "here")
    assert isinstance(err, PermanentError) and not isinstance(err, RetryableError)
    assert code in str(err) and f"HTTP {status}" in str(err)


@pytest.mark.parametrize("exc", [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ConnectTimeoutError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ConnectionClosedError(endpoint_url="http://127.0.0.1:9/bucket/key"),
    ResponseStreamingError(error=ProtocolError("Connection broken")),
    IncompleteReadError(actual_bytes=1, expected_bytes=10),
    ProtocolError("Connection aborted"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError("timed out"),
    CredentialRetrievalError(provider="container-role", error_msg="metadata service down"),
])
def test_network_trouble_is_retryable(exc):
    err = classify(exc, "s3:x put 'a'")
    assert isinstance(err, RetryableError)
    assert str(err).startswith("s3:x put 'a'")


@pytest.mark.parametrize("exc", [NoCredentialsError(), ParamValidationError(report="bad Key")])
def test_configuration_problems_are_permanent(exc):
    assert isinstance(classify(exc, "here"), PermanentError)


def test_unknown_exceptions_are_permanent_not_crashes():
    assert isinstance(classify(ValueError("odd"), "here"), PermanentError)


def test_non_utf8_name_is_permanent_and_named_before_any_request(tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"x")
    name = os.fsdecode(b"caf\xe9/men\xfc.txt")      # how a Latin-1 name arrives
    t = target()
    with pytest.raises(PermanentError) as info:
        t.put(name, str(src), size=1, mtime=0.0)
    assert r"caf\xe9/men\xfc.txt" in str(info.value) and "UTF-8" in str(info.value)
    assert t._client is None                          # nothing was sent
    # such a name can never be on S3: absent, and deleting it is a no-op
    assert t.stat(name) is None and t.read(name) is None
    t.delete(name)
    assert t._client is None


def test_key_longer_than_1024_bytes_is_permanent(tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"x")
    t = target()
    fits = "d/" + "é" * ((1024 - len("up/d/")) // 2)       # 2 bytes each
    assert len(("up/" + fits).encode()) <= 1024
    assert t._key(fits) == "up/" + fits
    with pytest.raises(PermanentError, match="1024"):
        t.put(fits + "xx", str(src), size=1, mtime=0.0)


@pytest.mark.parametrize("exc", [
    client_error("SignatureDoesNotMatch", 403,
                 f"The request signature we calculated does not match. AWSAccessKeyId={ACCESS} "
                 f"SignatureProvided={SIGNATURE} secret={SECRET}"),
    client_error("InvalidAccessKeyId", 403, f"The AWS Access Key Id {ACCESS} does not exist"),
    EndpointConnectionError(endpoint_url=f"http://127.0.0.1:9/?X-Amz-Credential={ACCESS}"
                                         f"&X-Amz-Signature={SIGNATURE}"),
])
def test_no_credential_in_any_message(exc):
    err = target()._error(exc, "put", "a/b.txt")
    text = f"{err} {err!r} {err.args}"
    for secret in (ACCESS, SECRET, SIGNATURE):
        assert secret not in text
    assert "a/b.txt" in text


def test_describe_names_bucket_and_prefix_but_no_credential():
    t = target()
    assert t.describe() == "s3:s3(s3://bucket/up/)"
    assert ACCESS not in repr(t.opts) and SECRET not in repr(t.opts)


@pytest.mark.parametrize("name,ctype", [
    ("a/photo.JPG", "image/jpeg"), ("doc.pdf", "application/pdf"), ("x.png", "image/png"),
    ("noext", "application/octet-stream"), ("archive.tar.gz", "application/gzip"),
    ("star*?[x].txt", "text/plain"), ("q?x=1#y.css", "text/css"), ("data:x.html", "text/html"),
    ("dir.d/README", "application/octet-stream"),
])
def test_content_type_from_the_name_only(name, ctype):
    assert content_type(name) == ctype


@pytest.mark.parametrize("mtime", [1_600_000_000.25, 1_700_000_123.123456789, 0.0, -1.5, 2.0 ** 33 + 0.1])
def test_mtime_metadata_round_trips_exactly(mtime):
    text = format_mtime(exact_ns(mtime))
    assert float(text) == mtime
    assert "e" not in text and text.count(".") == 1 and len(text.split(".")[1]) == 9


@pytest.mark.parametrize("ns,text", [
    (1_600_000_000_123_456_789, "1600000000.123456789"),   # a float would end ...456717
    (0, "0.000000000"), (-1_500_000_000, "-1.500000000"), (-1, "-0.000000001"),
])
def test_mtime_metadata_is_formatted_and_parsed_from_integer_nanoseconds(ns, text):
    assert format_mtime(ns) == text
    assert parse_ns(text) == ns


@pytest.mark.parametrize("mode,text", [(0o644, "0100644"), (0o600, "0100600"), (0o4755, "0104755")])
def test_mode_metadata_is_rclones_octal_with_type_bits(mode, text):
    assert format_mode(mode) == text
    assert parse_mode(text) == mode


@pytest.mark.parametrize("text", [None, "", "rw-r--r--", "9"])
def test_unreadable_mode_metadata_is_none(text):
    assert parse_mode(text) is None


@pytest.mark.parametrize("endpoint,mode", [
    ("", "flat"), ("https://s3.eu-west-1.amazonaws.com", "flat"), ("http://127.0.0.1:8333", "walk"),
    ("https://notamazonaws.com", "walk"), ("https://minio.example.org", "walk"),
])
def test_flat_listing_only_where_byte_order_is_documented(endpoint, mode):
    t = S3Target("s3", S3Options(bucket="bucket", endpoint_url=endpoint))
    assert t.list_mode == mode
