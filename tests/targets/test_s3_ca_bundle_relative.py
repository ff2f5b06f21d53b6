"""An S3 target's `ca_bundle` written relative to the config file reaches botocore and
the lean transport as that file, whatever the working directory (systemd's is /).

Before: the value was passed on as written, so from / botocore looked for `keys/ca.pem`
in / and every request failed "SSL validation failed ... [Errno 2] No such file or
directory", naming neither the file nor the key."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

from mirrord.config import load
from mirrord.targets.s3.client import make_client
from mirrord.targets.s3.endpoint import ca_bundle_path

SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")


def test_a_relative_ca_bundle_is_used_from_any_working_directory(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    (conf / "keys").mkdir(parents=True)
    (conf / "src").mkdir()
    shutil.copyfile(SYSTEM_CAS, conf / "keys" / "ca.pem")
    path = conf / "m.ini"
    path.write_text("[source:up]\npath = src\ntargets = b\n[target:b]\ntype = s3\n"
                    "bucket = bkt\nendpoint_url = https://127.0.0.1:8333\n"
                    "ca_bundle = keys/ca.pem\n")
    monkeypatch.chdir("/")
    opts = load(path).targets["b"].s3
    client, _ = make_client(opts, workers=1, connect_timeout=1, read_timeout=1, name="b",
                               secrets=[])
    want = str(conf / "keys" / "ca.pem")
    assert client._endpoint.http_session._verify == want
    ssl.create_default_context(cafile=ca_bundle_path(opts.ca_bundle))   # the lean transport's
