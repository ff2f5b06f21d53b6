"""The conninfo password never leaves `mirrord failover`, whatever form it is written in.

Each run writes the password into the `[failover]` conninfo in one shape (libpq's
`key=value` with quotes and spaces, the `postgresql://` URI with %-escapes), runs the real
command against the real PostgreSQL pair (right password, wrong password, and a URI libpq
cannot parse), and looks for the password in stdout, stderr, every file under state_dir
(failover.log included), the environment and output of the hooks, and what `mirrord
health` serves and logs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.services.postgres import PASSWORD

MIRRORD = Path(sys.executable).with_name("mirrord")
MARK = "Mk-" + os.urandom(4).hex()


def _uri(port: int, password: str) -> str:
    return f"postgresql://mirrord:{urllib.parse.quote(password, safe='')}@127.0.0.1:{port}/wiki"


def _ini(tmp: Path, database: str, primary: str) -> Path:
    etc = tmp / "etc"
    etc.mkdir(exist_ok=True)
    for name in ("readonly.php", "readwrite.php"):
        (etc / name).write_text(name)
    if not (etc / "active.php").is_symlink():
        os.symlink("readwrite.php", etc / "active.php")
    hook = f"sh -c 'env > {tmp}/hook.env; echo hook saw $#' x"
    path = tmp / "mirrord.ini"
    path.write_text(f"""
[mirrord]
state_dir = {tmp / 'state'}

[failover]
database = {database}
primary_database = {primary}
link = etc/active.php
readonly = etc/readonly.php
readwrite = etc/readwrite.php
pre_failover = {hook}
post_failover = {hook}
""")
    path.chmod(0o600)
    return path


def _everything(tmp: Path, proc: subprocess.CompletedProcess) -> dict[str, str]:
    seen = {"stdout": proc.stdout, "stderr": proc.stderr}
    for f in tmp.rglob("*"):
        if f.is_file() and f.name != "mirrord.ini":
            seen[str(f.relative_to(tmp))] = f.read_bytes().decode(errors="replace")
    return seen


def _run(ini: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MIRRORD), "-c", str(ini), *args], check=False, capture_output=True,
                          text=True, timeout=120)


def _assert_absent(seen: dict[str, str], *secrets: str) -> None:
    for where, text in seen.items():
        for secret in secrets:
            assert secret not in text, f"the password ({secret!r}) is in {where}:\n{text}"


def test_a_uri_password_never_shown_on_a_real_failover(tmp_path, pg):
    """The right password, in the URI form: the switch goes ahead, hooks run."""
    ini = _ini(tmp_path, _uri(pg.replica.port, PASSWORD), _uri(pg.primary.port, PASSWORD))
    proc = _run(ini, "failover", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "hook.env").exists() and "hook saw" in proc.stdout + proc.stderr
    _assert_absent(_everything(tmp_path, proc), PASSWORD, urllib.parse.quote(PASSWORD))
    assert _run(ini, "failback").returncode in (0, 1)   # leave the pair as found


@pytest.mark.parametrize("shape", ["keyvalue", "uri"])
def test_a_refused_password_is_never_shown(tmp_path, pg, shape):
    """A wrong password holding spaces, quotes, '@' and '%': libpq refuses it."""
    wrong = f"{MARK} it's a \"quoted\" @ 100% wrong"
    if shape == "uri":
        database = _uri(pg.replica.port, wrong)
    else:
        escaped = wrong.replace("\\", "\\\\").replace("'", "\\'")
        database = f"host=127.0.0.1 port={pg.replica.port} dbname=wiki user=mirrord password='{escaped}'"
    ini = _ini(tmp_path, database, database)
    for args in (("failover", "--dry-run"), ("failover",), ("switchover", "--dry-run")):
        proc = _run(ini, *args)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        _assert_absent(_everything(tmp_path, proc), MARK)


def test_a_uri_libpq_cannot_parse_is_a_config_error_that_hides_the_password(tmp_path):
    """libpq quotes the token it cannot parse, which for a URI is the password: it reached
    failover's output and failover.log. Now: exit 2 at load, the token masked."""
    for bad in (f"postgresql://mirrord:{MARK} spaced@127.0.0.1:1/wiki",
                f"postgresql://mirrord:{MARK}%zz@127.0.0.1:1/wiki"):
        ini = _ini(tmp_path, bad, "")
        for args in (("failover", "--dry-run"), ("check-config", "--json"), ("health",)):
            proc = _run(ini, *args)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "[failover] database: not a valid libpq conninfo" in proc.stderr
            assert "Traceback" not in proc.stderr
            _assert_absent(_everything(tmp_path, proc), MARK)


def test_health_never_shows_a_refused_uri_password(tmp_path, pg):
    """`mirrord health` (the real process): /ready, /live and /metrics while libpq refuses
    the password, and its log."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    database = _uri(pg.replica.port, f"{MARK} wrong/+=%")
    ini = _ini(tmp_path, database, database)
    ini.write_text(ini.read_text() + f"\n[health]\nlisten = 127.0.0.1:{port}\ninterval = 100ms\n")
    log = tmp_path / "health.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(MIRRORD), "-c", str(ini), "health"], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        seen = {}
        deadline = time.monotonic() + 60
        while "/ready" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            try:
                for page in ("/ready", "/live", "/metrics"):
                    seen[page] = _get(f"http://127.0.0.1:{port}{page}")
            except OSError:
                seen.clear()
                time.sleep(0.2)
        assert "password authentication failed" in seen["/ready"], seen["/ready"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    seen["log"] = log.read_text()
    _assert_absent(seen, MARK)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:   # /ready answers 503 with its body
        return exc.read().decode()
