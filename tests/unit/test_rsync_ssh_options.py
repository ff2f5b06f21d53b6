"""The ssh command line the rsync target builds: cipher preference and the operator's say."""

from __future__ import annotations

import subprocess

import pytest

from mirrord.config import RsyncOptions
from mirrord.targets.rsync import AES_FIRST_CIPHERS, RsyncTarget, connection, cpu_has_aes


def write(tmp_path, text: str) -> str:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return str(path)


def test_cpu_with_aes_flag_is_seen(tmp_path):
    x86 = "processor\t: 0\nflags\t\t: fpu vme sse2 aes avx2 sha_ni\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1\n"
    assert cpu_has_aes.__wrapped__(write(tmp_path, x86))
    assert cpu_has_aes.__wrapped__(write(tmp_path, arm))


def test_cpu_without_aes_or_unreadable_keeps_ssh_order(tmp_path):
    assert not cpu_has_aes.__wrapped__(write(tmp_path, "flags\t\t: fpu vme sse2 vaes-like aesni\n"))
    assert not cpu_has_aes.__wrapped__(str(tmp_path / "absent"))


def ssh_argv(monkeypatch, *, aes: bool, ssh_command: str = "ssh") -> list[str]:
    monkeypatch.setattr(connection, "cpu_has_aes", lambda: aes)
    return RsyncTarget("t", RsyncOptions(host="h", path="/m", ssh_command=ssh_command)).conn.ssh_base()


def effective(argv: list[str], option: str) -> str:
    """What ssh itself makes of the command line (ssh -G prints the resolved options)."""
    out = subprocess.run(argv + ["-G", "h"], capture_output=True, text=True, check=True).stdout
    return next(line.split(None, 1)[1] for line in out.splitlines() if line.startswith(option + " "))


def test_aes_gcm_is_preferred_on_an_aes_cpu(monkeypatch):
    argv = ssh_argv(monkeypatch, aes=True)
    assert effective(argv, "ciphers") == AES_FIRST_CIPHERS
    assert set(AES_FIRST_CIPHERS.split(",")) <= set(
        subprocess.run(["ssh", "-Q", "cipher"], capture_output=True, text=True, check=True).stdout.split())


def test_no_cipher_option_without_aes(monkeypatch):
    argv = ssh_argv(monkeypatch, aes=False)
    assert not any(a.startswith("Ciphers=") for a in argv)


@pytest.mark.parametrize("own", ["ssh -c chacha20-poly1305@openssh.com",
                                 "ssh -o Ciphers=aes256-ctr"])
def test_operators_cipher_in_ssh_command_wins(monkeypatch, own):
    argv = ssh_argv(monkeypatch, aes=True, ssh_command=own)
    assert effective(argv, "ciphers") == own.split()[-1].removeprefix("Ciphers=")
