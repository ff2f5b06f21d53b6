"""The lean path's SigV4 signing by AWS's native runtime (mirrord.targets.s3.signing)
signs exactly what botocore's S3SigV4Auth signed before it: at one instant, the same
request gets the same Authorization, for every key shape the targets send (spaces,
`%`, `+`, `~`, non-ASCII, deep paths), with and without a session token, a known or
computed payload digest, and the DeleteObject's empty body. The requests also reach a
real SeaweedFS, which checks the signatures (tests/integration/test_s3_target.py,
tests/targets)."""

from __future__ import annotations

import datetime
import hashlib
from urllib.parse import quote

import pytest
from botocore import auth as botocore_auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mirrord.targets.s3.signing import Signer

NOW = datetime.datetime(2026, 12, 1, 2, 30, 45, tzinfo=datetime.timezone.utc)
HOST = "127.0.0.1:8333"
KEYS = ["plain.jpg", "a b/c+d%e~f.png", "ä/ö ü/€.jpg", "x/" * 30 + "deep.txt",
        "q?x=1&y=2#frag.jpg", "semi;colon=eq,comma.jpg", "tab\tand\nnewline"]


def _botocore(creds: Credentials, method: str, path: str, headers: dict, body: bytes,
              sha256: str | None, monkeypatch) -> dict[str, str]:
    monkeypatch.setattr(botocore_auth, "get_current_datetime",
                        lambda: NOW.replace(tzinfo=None))
    request = AWSRequest(method=method, url=f"http://{HOST}{path}", data=body,
                         headers={**headers, "Host": HOST})
    request.context["payload_sha256"] = sha256

    class Known(S3SigV4Auth):
        def payload(self, req):
            return req.context["payload_sha256"] or super().payload(req)

    Known(creds.get_frozen_credentials(), "s3", "eu-west-3").add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@pytest.mark.parametrize("token", [None, "session-token/with+chars=="])
@pytest.mark.parametrize("key", KEYS)
def test_the_same_signature_as_botocore_for_a_put(key, token, monkeypatch):
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = b"bytes of a small upload"
    headers = {"Content-Type": "image/jpeg", "x-amz-meta-mtime": "1764556245.123456789",
               "x-amz-meta-mode": "644", "If-None-Match": "*"}
    path = "/bucket/prefix/" + quote(key, safe="/~")
    for sha256 in (hashlib.sha256(body).hexdigest(), None):
        ours = Signer(creds, "eu-west-3").sign("PUT", path, {**headers, "Host": HOST}, sha256,
                                               body, now=NOW)
        theirs = _botocore(creds, "PUT", path, headers, body, sha256, monkeypatch)
        ours = {k.lower(): v for k, v in ours.items()}
        assert ours["authorization"] == theirs["authorization"]
        assert ours["x-amz-content-sha256"] == theirs["x-amz-content-sha256"]
        assert ours["x-amz-date"] == theirs["x-amz-date"]
        assert ours.get("x-amz-security-token") == theirs.get("x-amz-security-token")


def test_the_same_signature_as_botocore_for_a_delete(monkeypatch):
    creds = Credentials("AKIDEXAMPLE", "secret")
    path = "/bucket/" + quote("gone file+.jpg", safe="/~")
    ours = Signer(creds, "eu-west-3").sign("DELETE", path, {"Host": HOST}, None, None, now=NOW)
    theirs = _botocore(creds, "DELETE", path, {}, b"", None, monkeypatch)
    assert ours["Authorization"] == theirs["authorization"]
    assert ours["x-amz-content-sha256"] == hashlib.sha256(b"").hexdigest()


def test_refreshed_credentials_are_taken_and_never_shown(monkeypatch):
    """A refreshable provider's new keys sign the next request; an error names no secret."""
    creds = Credentials("AKIDOLD", "old-secret")
    signer = Signer(creds, "us-east-1")
    first = signer.sign("PUT", "/b/k", {"Host": HOST}, None, b"x", now=NOW)["Authorization"]
    creds.access_key, creds.secret_key = "AKIDNEW", "new-secret"
    second = signer.sign("PUT", "/b/k", {"Host": HOST}, None, b"x", now=NOW)["Authorization"]
    assert "AKIDOLD/" in first and "AKIDNEW/" in second
    assert "secret" not in first + second


def test_the_sdk_keeps_its_python_signer_though_awscrt_is_installed():
    """awscrt is installed for signing.py; botocore would then sign every SDK request,
    multipart parts included, with awscrt's signer, whose body-reading callback printed raw
    tracebacks to stderr when a failed upload's other parts were cancelled. The package
    sets botocore's opt-out before botocore is imported (an operator's own value wins)."""
    import os
    import subprocess
    import sys
    code = ("import mirrord.targets.s3.client, botocore.auth, awscrt.auth; "
            "print(botocore.auth.AUTH_TYPE_MAPS['s3v4'].__module__)")
    env = {k: v for k, v in os.environ.items() if k != "BOTO_DISABLE_CRT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "botocore.auth"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "BOTO_DISABLE_CRT": "false"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "botocore.crt.auth"
