"""sd_notify against real AF_UNIX datagram sockets: a path in tmp_path and an abstract name."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path

import pytest

from mirrord import notify


@pytest.fixture
def path_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def test_unset_socket_is_a_quiet_no_op():
    assert notify.notify(notify.READY, env={}) is False


def test_unset_socket_in_the_real_environment(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify(notify.READY) is False


def test_ready_and_status_arrive_as_one_datagram(path_socket, monkeypatch):
    path, sock = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify.notify(notify.READY, notify.status("watching 3 dirs\n2 targets")) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=watching 3 dirs 2 targets"


@pytest.mark.parametrize("state", [notify.WATCHDOG, notify.STOPPING, notify.RELOADING])
def test_each_state(path_socket, state):
    path, sock = path_socket
    assert notify.notify(state, env={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == state.encode()


def test_abstract_namespace_socket():
    name = f"mirrord-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert notify.notify(notify.READY, env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"


def test_send_error_returns_false_and_logs_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(notify, "_warned", False)
    env = {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")}
    with caplog.at_level(logging.DEBUG, logger="mirrord.notify"):
        assert notify.notify(notify.WATCHDOG, env=env) is False
        assert notify.notify(notify.WATCHDOG, env=env) is False
    assert len([r for r in caplog.records if r.name == "mirrord.notify"]) == 1


def test_relative_socket_value_is_ignored(monkeypatch):
    monkeypatch.setattr(notify, "_warned", False)
    assert notify.notify(notify.READY, env={"NOTIFY_SOCKET": "relative.sock"}) is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert notify.watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0


def test_watchdog_interval_for_this_pid():
    env = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    assert notify.watchdog_interval(env) == 5.0


@pytest.mark.parametrize("env", [
    {},
    {"WATCHDOG_USEC": "0"},
    {"WATCHDOG_USEC": "junk"},
    {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"},
    {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"},
])
def test_no_watchdog(env):
    if env.get("WATCHDOG_PID") == "1" and os.getpid() == 1:
        env = {**env, "WATCHDOG_PID": "2"}
    assert notify.watchdog_interval(env) is None
