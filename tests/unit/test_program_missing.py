"""config.cmdline.program_missing: whether a command line's program is on this host.

ssh_command asks that this user may run it (the daemon runs it). The failover's reload
command and hooks ask only that a file is there (hooks.program_checks): /ready asks as the
health service's user, which need not be allowed to run the root-only script a failover,
run as root, runs; asked as that user, a 0700 hook made /ready say 503 for good."""

from __future__ import annotations

import os

import pytest

from mirrord.config.cmdline import program_missing


@pytest.fixture
def bindir(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    d.mkdir()
    (d / "runnable").write_text("#!/bin/sh\n")
    (d / "runnable").chmod(0o755)
    (d / "notexec").write_text("#!/bin/sh\n")
    (d / "notexec").chmod(0o644)
    monkeypatch.setenv("PATH", str(d))
    return d


def test_a_path(bindir):
    assert program_missing(f"{bindir}/runnable --now") is None
    assert program_missing(f"{bindir}/nosuch") == "does not exist"
    assert program_missing(f"{bindir}/nosuch", executable=False) == "does not exist"
    assert program_missing(str(bindir)) == "is not an executable file"   # a directory
    assert program_missing(str(bindir), executable=False) == "is not a file"
    os.symlink(f"{bindir}/nosuch", bindir / "dangling")
    assert program_missing(f"{bindir}/dangling", executable=False) == "is not a file"
    if os.geteuid() != 0:   # root may execute any file with an x bit anywhere: not this case
        assert program_missing(f"{bindir}/notexec") == "is not an executable file"
    assert program_missing(f"{bindir}/notexec", executable=False) is None


def test_a_name_on_path(bindir):
    assert program_missing("runnable -x") is None
    assert program_missing("nosuch") == "is not found on PATH"
    assert program_missing("nosuch", executable=False) == "is not found on PATH"
    assert program_missing("notexec", executable=False) is None
    assert program_missing("notexec") == "is not found on PATH"   # shutil.which: X_OK


def test_an_empty_line_takes_the_default(bindir):
    assert program_missing("", "runnable") is None
    assert program_missing("", "nosuch") == "is not found on PATH"
    assert program_missing("") is None
