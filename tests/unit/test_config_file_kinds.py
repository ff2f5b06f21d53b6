"""A config path that is not a regular, reasonably sized UTF-8 text file is one problem,
at once: `-c /dev/zero` read forever, a FIFO blocked in open(2) until a writer came, a
directory or a socket was "cannot read: [Errno ...]", a file of many MB was read whole."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from mirrord.config import load
from mirrord.config.load import MAX_CONFIG_BYTES
from mirrord.errors import ConfigError

GOOD = "[source:up]\npath = src\ntargets = m\n[target:m]\ntype = local\npath = mirror\n"


def only_problem(path: Path | str) -> str:
    """Load `path` in a thread with a bound on the wait (a FIFO or /dev/zero never
    returned) -> the one problem's text, file-level."""
    found: list = []
    worker = threading.Thread(target=lambda: found.append(_load(path)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert found, f"loading {path} did not return"
    (problem,) = found[0]
    assert problem.file == str(Path(path).absolute()) and (problem.section, problem.key) == ("", "")
    return problem.message


def _load(path):
    try:
        load(path)
    except ConfigError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("device, kind", [("/dev/zero", "a character device"),
                                          ("/dev/urandom", "a character device"),
                                          ("/dev/null", "a character device")])
def test_a_device_is_refused_without_reading_it(device, kind):
    assert only_problem(device) == f"is {kind}, not a config file"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert only_problem(tmp_path / "fifo") == "is a FIFO (named pipe), not a config file"


def test_a_directory_is_refused(tmp_path):
    assert only_problem(tmp_path) == "is a directory, not a config file"


def test_a_socket_is_refused(tmp_path):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        assert only_problem(tmp_path / "sock") == "is a socket, not a config file"


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    big = tmp_path / "big.ini"
    big.write_text(GOOD + "; " + "x" * MAX_CONFIG_BYTES + "\n")
    assert "is larger than 1,048,576 bytes" in only_problem(big)


def test_a_file_at_the_size_limit_is_read(tmp_path):
    (tmp_path / "src").mkdir()
    path = tmp_path / "m.ini"
    padding = "; " + "x" * (MAX_CONFIG_BYTES - len(GOOD) - 3) + "\n"
    path.write_text(GOOD + padding)
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load(path).sources[0].name == "up"


@pytest.mark.parametrize("data, line", [(b"[mirrord]\nhostname = caf\xe9\n", 2),
                                        (b"\xff\xfe[\x00m\x00", 1),           # UTF-16
                                        (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\xb7", 1)])
def test_a_file_that_is_not_utf8_names_the_line(tmp_path, data, line):
    path = tmp_path / "m.ini"
    path.write_bytes(data)
    message = only_problem(path)
    assert message.startswith("is not UTF-8 text (byte 0x") and f"on line {line})" in message


def test_a_byte_order_mark_is_still_fine(tmp_path):
    (tmp_path / "src").mkdir()
    path = tmp_path / "m.ini"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load(path).sources[0].name == "up"


def test_a_symlink_to_a_regular_file_is_followed_and_one_to_a_device_refused(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "real.ini").write_text(GOOD)
    os.symlink(tmp_path / "real.ini", tmp_path / "link.ini")
    assert load(tmp_path / "link.ini").sources[0].name == "up"
    os.symlink("/dev/zero", tmp_path / "zero.ini")
    assert only_problem(tmp_path / "zero.ini") == "is a character device, not a config file"


def test_a_path_that_cannot_be_opened_says_why_once(tmp_path):
    """An OSError other than "no such file" (here ENOTDIR: a file used as a directory; as
    root, EACCES cannot be made) is its strerror, without errno and path repeated."""
    (tmp_path / "file").write_text(GOOD)
    assert only_problem(tmp_path / "file" / "m.ini") == "cannot read: Not a directory"
