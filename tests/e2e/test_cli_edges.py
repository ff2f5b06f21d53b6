"""The real `mirrord` process at its edges: a config path that is no config file, a target
path the target cannot hold, a credential in a hook's command line, Ctrl-C and SIGTERM
while the program is still importing.

A user error is one line naming the file, section and key, exit 2, never a traceback; no
credential reaches the output or failover.log; Ctrl-C is exit 130, quietly.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

MIRRORD = Path(sys.executable).with_name("mirrord")
MARK = "Mk-" + os.urandom(4).hex()
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)   # Linux fcntl(2)


def _run(ini: Path | str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(MIRRORD), "-c", str(ini), *args], capture_output=True,
                          text=True, timeout=60, check=False, **kwargs)


def _one_config_error(proc: subprocess.CompletedProcess, where: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"mirrord: config error: {where}: "), line
    return line


# ----------------------------------------------- config paths that are no config file


def test_a_config_path_that_is_no_config_file_is_one_line_and_exit_2(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big.ini").write_bytes(b"[mirrord]\n" + b";" * (2 << 20) + b"\n")
    (tmp_path / "latin1.ini").write_bytes(b"[mirrord]\nhostname = caf\xe9\n")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        for path, said in [("/dev/zero", "is a character device"),
                           ("/dev/urandom", "is a character device"),
                           (tmp_path / "fifo", "is a FIFO (named pipe)"),
                           (tmp_path, "is a directory"), (tmp_path / "sock", "is a socket"),
                           (tmp_path / "big.ini", "is larger than 1,048,576 bytes"),
                           (tmp_path / "latin1.ini", "is not UTF-8 text (byte 0xe9 on line 2)")]:
            for command in ("status", "check-config"):
                line = _one_config_error(_run(path, command), f"{path}: (file)")
                assert said in line, line


@pytest.mark.parametrize("body", ["[mirrord]\nstate_dir = state\n",
                                  "[target:t]\ntype = local\npath = mirror\n"])
def test_run_on_a_config_without_a_source_is_a_config_error(tmp_path, body):
    """Found by a breaker: `run` said "nothing to watch" with exit 1 (a fault of the
    service, to systemd) while check-config said ok. A failover-only config (a mirror
    host's) needs no source, so check-config only says what `run` will do."""
    ini = tmp_path / "m.ini"
    ini.write_text(body)
    line = _one_config_error(_run(ini, "run"), f"{ini}: (file)")
    assert "no [source:NAME] section" in line, line
    checked = _run(ini, "check-config")
    assert checked.returncode == 0 and "`mirrord run` refuses it" in checked.stdout, checked


def test_a_local_target_root_that_did_not_exist_is_created_with_a_warning(tmp_path):
    """Found by a breaker: a mistyped local target path silently made a new tree."""
    (tmp_path / "src").mkdir()
    ini = tmp_path / "m.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path}/state\n[source:up]\npath = "
                   f"{tmp_path}/src\ntargets = t\n[target:t]\ntype = local\npath = "
                   f"{tmp_path}/typo/mirror\n[reconcile]\nat_start = no\n")
    done = _run(ini, "reconcile")
    assert done.returncode == 0, done.stderr
    assert "local target root did not exist: created it" in done.stderr, done.stderr
    assert f"{tmp_path}/typo/mirror" in done.stderr
    again = _run(ini, "reconcile")
    assert "did not exist" not in again.stderr, again.stderr


# ------------------------------------------------------ target paths, every command


FAILOVER = """
[failover]
database = host=127.0.0.1 port=1 dbname=wiki user=mirrord
link = etc/active.php
readonly = etc/readonly.php
readwrite = etc/readwrite.php
"""


@pytest.mark.parametrize("key, value, section", [
    ("prefix", "wiki/../other", "target:bucket"), ("prefix", "a//b", "target:bucket"),
    ("prefix", "p" * 1100, "target:bucket"), ("prefix", "a\x01b", "target:bucket"),
    ("dest", "a\x1bb", "source:up"), ("dest", "x/" + "n" * 300, "source:up"),
])
def test_a_target_path_that_cannot_work_is_refused_by_every_command(tmp_path, key, value, section):
    (tmp_path / "src").mkdir()
    text = ("[source:up]\npath = src\ntargets = bucket\n"
            + (f"dest = {value}\n" if key == "dest" else "")
            + "[target:bucket]\ntype = s3\nbucket = wiki-mirror\n"
            + (f"prefix = {value}\n" if key == "prefix" else "") + FAILOVER)
    ini = tmp_path / "m.ini"
    ini.write_text(text)
    for args in (("run",), ("reconcile", "--dry-run"), ("status",), ("check-config",),
                 ("failover", "--dry-run"), ("trash",)):
        _one_config_error(_run(ini, *args), f"{ini}: [{section}] {key}")


# ------------------------------------------------- credentials in hook command lines


@pytest.fixture
def failover_ini(tmp_path, pg) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("readonly.php", "readwrite.php"):
        (etc / name).write_text(name)
    os.symlink("readwrite.php", etc / "active.php")
    path = tmp_path / "mirrord.ini"
    path.write_text(f"""
[mirrord]
state_dir = {tmp_path / 'state'}

[failover]
database = {pg.replica_conninfo}
primary_database = {pg.primary_conninfo}
link = etc/active.php
readonly = etc/readonly.php
readwrite = etc/readwrite.php
reload_command = env MYSQL_PWD={MARK} sh -c 'exit 0' reload -u admin:{MARK}
pre_failover = sh -c 'exit 0' pre --password {MARK} http://admin:{MARK}@127.0.0.1/x
post_failover = /nonexistent/notify --token {MARK}
""")
    path.chmod(0o600)
    return path


def test_a_credential_in_a_hook_is_never_shown(failover_ini, tmp_path):
    """--dry-run lists every command (and refuses: the post hook's program is not there,
    hooks.program_checks; with --force it plans); a real run shows them in its steps
    and, for the post hook that cannot run, in "to finish"; failover.log records it all."""
    seen = {}
    refused = _run(failover_ini, "failover", "--dry-run")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "program.post_failover" in refused.stdout and "does not exist" in refused.stderr
    dry = _run(failover_ini, "failover", "--dry-run", "--force")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    for proc in (refused, dry):
        for shown in ("--password ***", "http://***@127.0.0.1/x", "env 'MYSQL_PWD=***' sh -c",
                      "reload -u admin:***", "/nonexistent/notify --token ***"):
            assert shown in proc.stdout, proc.stdout
    real = _run(failover_ini, "failover", "--force")
    assert real.returncode == 1 and "Traceback" not in real.stderr, real.stdout + real.stderr
    assert "run /nonexistent/notify --token *** by hand" in real.stdout, real.stdout
    config = _run(failover_ini, "check-config", "--json")
    assert config.returncode == 0, config.stderr
    back = _run(failover_ini, "failback")
    for name, proc in (("refused", refused), ("dry", dry), ("real", real), ("check-config", config), ("failback", back)):
        seen[f"{name} stdout"], seen[f"{name} stderr"] = proc.stdout, proc.stderr
    for f in (tmp_path / "state").rglob("*"):
        if f.is_file():
            seen[str(f)] = f.read_bytes().decode(errors="replace")
    assert any("failover.log" in where for where in seen)
    for where, text in seen.items():
        assert MARK not in text, f"the credential is in {where}:\n{text}"


# ------------------------------------------------------- signals while importing


def _sigint_default() -> None:
    """In the child: SIGINT back to its default action. A test run started as a background
    job (`make test &` from a script: bash ignores SIGINT there) passes SIG_IGN down, and a
    Python started with SIGINT ignored keeps it so: Ctrl-C was lost, and these tests failed
    under such a runner while mirrord did what a user's shell asks of it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signalled_at(ini: Path, command: str, milestone: str, signum: int) -> tuple[int, str]:
    """Run `mirrord -c ini command` with Python's import trace on stderr through a pipe of
    one page; at the trace line of `milestone` stop reading (the child then blocks on its
    next trace line, still importing) and send `signum` -> (exit code, stderr)."""
    proc = subprocess.Popen([str(MIRRORD), "-c", str(ini), command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONVERBOSE="1"),
                            preexec_fn=_sigint_default)
    assert proc.stderr is not None
    fcntl.fcntl(proc.stderr.fileno(), F_SETPIPE_SZ, 4096)
    seen = []
    for raw in proc.stderr:
        seen.append(raw.decode(errors="replace"))
        if milestone in seen[-1]:
            break
    else:
        proc.kill()
        pytest.fail(f"no import of {milestone}:\n{''.join(seen[-20:])}")
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=60)
    return proc.returncode, "".join(seen) + rest.decode(errors="replace")


@pytest.fixture
def local_ini(tmp_path) -> Path:
    (tmp_path / "src").mkdir()
    path = tmp_path / "m.ini"
    path.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n"
                    "[source:up]\npath = src\ntargets = m\n[target:m]\ntype = local\npath = mirror\n")
    return path


# from the first module of mirrord's own to the last a command loads before it runs
MILESTONES = ("mirrord/cli/dispatch", "argparse", "mirrord/config/model", "mirrord/logsetup",
              "mirrord/exclude", "mirrord/cli/status")


@pytest.mark.parametrize("milestone", MILESTONES)
def test_ctrl_c_while_importing_is_exit_130_without_a_traceback(local_ini, milestone):
    code, stderr = _signalled_at(local_ini, "status", milestone, signal.SIGINT)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert code == 130


@pytest.mark.parametrize("milestone", ("mirrord/cli/dispatch", "mirrord/config/model",
                                       "mirrord/cli/run"))
def test_ctrl_c_while_run_imports_is_exit_130(local_ini, milestone):
    code, stderr = _signalled_at(local_ini, "run", milestone, signal.SIGINT)
    assert "Traceback" not in stderr and code == 130, stderr[-3000:]


@pytest.mark.parametrize("milestone", ("mirrord/cli/dispatch", "mirrord/cli/run"))
def test_sigterm_while_run_imports_ends_it_quietly(local_ini, milestone):
    """Before `run` installs its handler, SIGTERM keeps its default action: the process
    ends by the signal (systemd counts that a clean stop), printing nothing."""
    code, stderr = _signalled_at(local_ini, "run", milestone, signal.SIGTERM)
    assert "Traceback" not in stderr and code == -signal.SIGTERM, stderr[-3000:]
