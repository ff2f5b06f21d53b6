"""What the commands print survives awkward output: a file name that is not UTF-8 under a
strict UTF-8 stdout, and a stdout that cannot be written (a full disk). Each was a
traceback; now the name is written as its bytes (JSON: an escape) and a failed write is one
line and exit 1. A metrics address that cannot be bound was a traceback too."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

MIRRORD = Path(sys.executable).with_name("mirrord")
NAME = b"caf\xe9-latin1.jpg"   # Latin-1 bytes: not UTF-8


def _ini(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "src").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "src"), NAME), "wb") as fh:
        fh.write(b"photo")
    path = tmp_path / "m.ini"
    path.write_text(f"[source:up]\npath = src\ntargets = mirror\n{extra}\n"
                    "[target:mirror]\ntype = local\npath = mirror\n")
    path.chmod(0o600)
    return path


def _run(ini: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")   # strict, as under LANG=en_US.UTF-8
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([str(MIRRORD), "-c", str(ini), *args], check=False, stderr=subprocess.PIPE,
                          env=env, timeout=120, **kwargs)


def test_a_name_that_is_not_utf8_is_printed_by_every_command(tmp_path):
    ini = _ini(tmp_path, "exclude = *.jpg, !*latin1*")
    assert _run(ini, "reconcile").returncode == 0
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "mirror"), NAME))
    for args in (("status",), ("check-config",), ("status", "--json"), ("check-config", "--json"),
                 ("reconcile", "--dry-run"), ("reconcile", "--dry-run", "--json")):
        res = _run(ini, *args)
        assert res.returncode == 0 and b"Traceback" not in res.stderr, (args, res.stderr)
        if "--json" in args:
            json.loads(res.stdout.decode("utf-8"))   # still valid UTF-8 JSON
    assert NAME in _run(ini, "status").stdout    # the name's own bytes, as ls shows it
    preview = json.loads(_run(ini, "check-config", "--json").stdout)["sources"][0]
    assert preview["exclude_preview"][0]["real"] == [os.fsdecode(NAME)]


@pytest.mark.parametrize("args", [("check-config",), ("check-config", "--json"),
                                  ("status", "--json"), ("status",)])
def test_output_that_cannot_be_written_is_one_line_and_exit_1(tmp_path, args):
    ini = _ini(tmp_path)
    with open("/dev/full", "w") as full:
        res = _run(ini, *args, stdout=full)
    assert res.returncode == 1, res.stderr
    assert res.stderr.decode().strip() == "mirrord: [Errno 28] No space left on device"


def test_a_metrics_address_that_cannot_be_bound_is_one_line_naming_the_key(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ini = _ini(tmp_path)
        ini.write_text(f"[mirrord]\nmetrics_listen = 127.0.0.1:{port}\n" + ini.read_text())
        res = _run(ini, "run")
    assert res.returncode == 1 and b"Traceback" not in res.stderr, res.stderr
    assert (f"mirrord: cannot listen on 127.0.0.1:{port} ([mirrord] metrics_listen in {ini}): "
            "Address already in use").encode() in res.stderr


@pytest.mark.parametrize("args", [("-c", ""), ("--config=",), ("-c", "  ")])
def test_an_empty_config_option_is_a_usage_error_not_the_default_file(tmp_path, args):
    """`mirrord -c "$CONF" status` with CONF unset loaded ./mirrord.ini silently."""
    ini = _ini(tmp_path)
    ini.rename(tmp_path / "mirrord.ini")
    res = subprocess.run([str(MIRRORD), *args, "check-config"], capture_output=True, text=True,
                         cwd=tmp_path, check=False, timeout=60)
    assert res.returncode == 2 and res.stdout == "", res.stdout
    assert res.stderr.startswith("mirrord: argument -c/--config: an empty path")


@pytest.mark.parametrize("fd", [1, 2])
def test_a_closed_stdout_never_lends_its_number_to_a_file_mirrord_opens(tmp_path, fd):
    """`mirrord run >&-` (or 2>&-): with fd 1 closed, the next file mirrord opened took
    number 1, so a child's output or a stray print went into it (the state database, a
    shipped file), and the exit flush of sys.stdout (None) was a traceback. The daemon
    opens /dev/null there first."""
    import time

    ini = _ini(tmp_path)
    proc = subprocess.Popen([str(MIRRORD), "-c", str(ini), "run"], stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: os.close(fd))
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "mirror" / "caf\udce9-latin1.jpg").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "not mirrored"
            time.sleep(0.05)
        assert os.readlink(f"/proc/{proc.pid}/fd/{fd}") == os.devnull
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read().decode(errors="replace")[-2000:]
