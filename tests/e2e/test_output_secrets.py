"""A secret mirrord treats as one never reaches what the real `mirrord` process prints or stores.

Shapes a breaker found: a hook and a reload_command that print their own secrets (the
command line was shown masked, its output in clear, on stdout, in the log and in
failover.log; the " | " joining output lines was masked instead of a password that
followed `--password`); reconcile's own error lines with an ssh ProxyCommand that repeats
a `--password` value (the daemon's log masked it, the CLI's print did not); a memcached
address with user:password@ or `--password x`, repeated in its config error.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from tests.services.postgres import PASSWORD

MIRRORD = Path(sys.executable).with_name("mirrord")


def _run(ini: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MIRRORD), "-c", str(ini), *args], check=False,
                          capture_output=True, text=True, timeout=120)


def _everything(tmp: Path, proc: subprocess.CompletedProcess) -> dict[str, str]:
    seen = {"stdout": proc.stdout, "stderr": proc.stderr}
    for f in tmp.rglob("*"):
        if f.is_file() and f.suffix != ".ini":
            seen[str(f.relative_to(tmp))] = f.read_bytes().decode(errors="replace")
    return seen


def _assert_absent(seen: dict[str, str], *secrets: str) -> None:
    for where, text in seen.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} is in {where}:\n{text}"


def _unreachable_rsync(tmp_path: Path, proxy_option: str) -> Path:
    """A config mirroring tmp_path/src (one file) to an rsync target whose ssh runs
    `-o PROXY_OPTION` (written into the command line as given: quote it) and reaches
    nothing (the ProxyCommand runs locally; nothing listens on the port)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("x")
    ini = tmp_path / "m.ini"
    ini.write_text(f"""
[mirrord]
state_dir = {tmp_path / 'state'}
[source:s]
path = {tmp_path / 'src'}
targets = r
[target:r]
type = rsync
host = 127.0.0.1
port = 2
path = /srv/m
ssh_command = ssh -o BatchMode=yes -o {proxy_option}
connect_timeout = 2s
""")
    return ini


def test_hook_and_reload_output_never_shows_their_secrets(tmp_path, pg):
    """The real failover against the real PostgreSQL pair, forced; then failback."""
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("readonly.php", "readwrite.php"):
        (etc / name).write_text(name)
    os.symlink("readwrite.php", etc / "active.php")
    ini = tmp_path / "mirrord.ini"
    ini.write_text(f"""
[mirrord]
state_dir = {tmp_path / 'state'}

[failover]
database = postgresql://mirrord:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:{pg.replica.port}/wiki
link = etc/active.php
readonly = etc/readonly.php
readwrite = etc/readwrite.php
pre_failover = /usr/bin/printf "%s\\n" --password HOOKSECRET5
reload_command = env DB_PASSWORD=HOOKSECRET6 /bin/sh -c 'echo "db pw is $DB_PASSWORD"; echo "$DB_PASSWORD" >&2'
post_failover = env MYAPP_TOKEN=HOOKSECRET1 /bin/sh -c 'echo post $MYAPP_TOKEN'
""")
    ini.chmod(0o600)
    try:
        proc = _run(ini, "failover", "--force")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = proc.stdout + proc.stderr
        assert "output: --password | ***" in out, out        # the separator kept
        assert "output: db pw is *** | ***" in out, out
        assert "output: post ***" in out, out
        assert (tmp_path / "state" / "failover.log").exists()
        _assert_absent(_everything(tmp_path, proc), "HOOKSECRET5", "HOOKSECRET6", "HOOKSECRET1")
    finally:
        assert _run(ini, "failback").returncode in (0, 1)   # the pair as found


def test_reconcile_output_masks_a_proxycommand_password(tmp_path):
    """ssh's ProxyCommand fails and repeats `--password SSHTOK1` on stderr: reconcile's
    text, --json and --dry-run output show it masked (the ProxyCommand runs locally, so
    nothing listens on the target's port)."""
    proxy = "sh -c 'echo proxy auth --password SSHTOK1 failed >&2; exit 1'"
    ini = _unreachable_rsync(tmp_path, f'"ProxyCommand={proxy}"')
    for args in (("reconcile",), ("reconcile", "--json"), ("reconcile", "--dry-run")):
        proc = _run(ini, *args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "proxy auth --password *** failed" in proc.stdout + proc.stderr, proc.stdout
        assert "Traceback" not in proc.stderr
        _assert_absent(_everything(tmp_path, proc), "SSHTOK1")


def test_a_memcached_address_with_credentials_is_a_config_error_without_them(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("ro.php", "rw.php"):
        (etc / name).write_text(name)
    for value in ("admin:MEMSECRET99@127.0.0.1:11211", "127.0.0.1:11211 --password MEMSECRET98"):
        ini = tmp_path / "m.ini"
        ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n[failover]\n"
                       f"database = host=127.0.0.1 dbname=wiki\nlink = etc/L.php\n"
                       f"readonly = etc/ro.php\nreadwrite = etc/rw.php\nmemcached = {value}\n")
        for args in (("check-config",), ("failover", "--dry-run")):
            proc = _run(ini, *args)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert "[failover] memcached:" in proc.stderr and "not supported" in proc.stderr
            assert "brackets" not in proc.stderr and "Traceback" not in proc.stderr
            _assert_absent({"stdout": proc.stdout, "stderr": proc.stderr}, "MEMSECRET")


# a password as an ssh ProxyCommand's own option (registered: config.cmdline), holding what
# the patterns stop at (a space, a quote) and what kv()'s JSON quoting escapes (\ and ")
@pytest.mark.parametrize("secret", ["SSH SECRET7", 'pa"ss-SSHSECRET8', "pa\\ssSSHSECRET9"],
                         ids=["space", "double quote", "backslash"])
def test_a_proxycommand_password_holding_a_space_quote_or_backslash_is_never_shown(tmp_path,
                                                                                   secret):
    """A review (helper-144): the ProxyCommand prints its password back. reconcile showed
    `--password *** SECRET7` (the pattern stopped at the space, and the value was no longer
    whole for its own mask), the daemon's text log showed `pa\\\\ssSSHSECRET9` whole (kv()
    escapes the field, and the mask looked for the value as it is), and the state database
    kept the reconcile summary's error unmasked."""
    echo = tmp_path / "echo-proxy"
    echo.write_text('#!/bin/sh\nprintf "got: %s\\n" "$2" >&2\nexit 1\n')
    echo.chmod(0o755)
    proxy = f"ProxyCommand={echo} --password {shlex.quote(secret)}"
    ini = _unreachable_rsync(tmp_path, shlex.quote(proxy))
    mark = "SECRET" + secret.rsplit("SECRET", 1)[1]   # any part of it left shows this
    for args in (("reconcile",), ("reconcile", "--json"), ("check-config",)):
        proc = _run(ini, *args)
        assert "Traceback" not in proc.stderr, proc.stderr
        _assert_absent(_everything(tmp_path, proc), mark)
    daemon = subprocess.Popen([str(MIRRORD), "-c", str(ini), "run"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in daemon.stdout:   # until the target's start-up error is logged
            lines.append(line)
            if "not reachable" in line:
                break
    finally:
        daemon.terminate()
        rest, _ = daemon.communicate(timeout=60)
    log = "".join(lines) + rest
    assert "not reachable" in log and "got: ***" in log, log
    files = _everything(tmp_path, subprocess.CompletedProcess([], 0, "", ""))
    _assert_absent({"run's log": log, **files}, mark)
