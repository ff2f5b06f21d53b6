"""heartbeat.age says what stands at `<mirror root>/.mirrord/heartbeat.json` when it is
no heartbeat file, on a local heartbeat target (failover.heartbeat.read, Target.meta_kind).

A user's `mirrord failover --dry-run` said "no heartbeat.json on target mirror: is mirrord
running on the primary?" with a directory there; the same for a FIFO or a symlink (each
rightly never read: tests/targets/test_fifo_planted_in_the_mirror.py,
test_meta_dir_planted_symlink.py). Now the check names the path and what is there; it is
judged as an absent heartbeat was (a warning for failover, a failure for a strict /ready),
the symlink is still never followed (a valid heartbeat outside stays unread) and the
FIFO never blocks (the read is bounded: heartbeat.fetch's timeout). A root whose
`.mirrord` itself is no directory keeps its refusal (MirrorRootMissing, only --force),
now with what stands at `.mirrord`.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from mirrord.cli.main import main
from mirrord.config import load
from mirrord.failover import heartbeat, procedure
from mirrord.failover.result import FAIL, WARN


def ini(tmp_path):
    path = tmp_path / "mirrord.ini"
    path.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n\n[target:mirror]\n"
                    f"type = local\npath = {tmp_path / 'mirror'}\n\n[failover]\n"
                    "database = host=127.0.0.1 port=1 dbname=x connect_timeout=2\n"
                    f"heartbeat_target = mirror\nmode = flagfile\nflag = {tmp_path / 'ro'}\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def mirror(tmp_path):
    """A mirror root holding a file and mirrord's area; a fresh heartbeat outside it."""
    root = tmp_path / "mirror"
    (root / ".mirrord").mkdir(parents=True)
    (root / "up").mkdir()
    (root / "up" / "a.png").write_bytes(b"png")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "heartbeat.json").write_text(json.dumps(
        {"version": 1, "unix": time.time(), "time": "now", "host": "primary"}))
    return root


HB = ".mirrord/heartbeat.json"
SHAPES = {   # shape: (how to make it, the words heartbeat.age must carry)
    "directory": (lambda hb, out: hb.mkdir(), f"{HB} is a directory, not a heartbeat file"),
    "fifo": (lambda hb, out: os.mkfifo(hb),
             f"{HB} is a FIFO (named pipe), not a heartbeat file (never opened"),
    "symlink": (lambda hb, out: os.symlink(out / "heartbeat.json", hb),
                f"{HB} is a symlink to '{{out}}/heartbeat.json', not a heartbeat file (never "
                "followed"),
    "symlink-to-dir": (lambda hb, out: os.symlink(out, hb),
                       f"{HB} is a symlink to '{{out}}', not a heartbeat file"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_heartbeat_age_says_what_stands_there(tmp_path, mirror, shape):
    make, words = SHAPES[shape]
    out = tmp_path / "outside"
    make(mirror / HB, out)
    cfg = load(ini(tmp_path))
    started = time.monotonic()
    hb, error = heartbeat.fetch(cfg, "mirror", timeout=10)
    assert time.monotonic() - started < 10 and hb is None    # never blocked, never followed
    (age,) = heartbeat.judge(hb, error, target="mirror", now=time.time(), max_age=60,
                             severity=WARN)
    assert words.format(out=out) in age.message, age.message
    assert str(mirror) in age.message and "no heartbeat.json" not in age.message
    assert (age.ok, age.status, age.refuses) == (False, "WARN", False)   # as an absent one
    strict = heartbeat.judge(hb, error, target="mirror", now=time.time(), max_age=60,
                             severity=FAIL)[0]
    assert strict.refuses and not procedure.forceable(strict)


@pytest.mark.parametrize("shape, words", [
    ("symlink", ".mirrord is a symlink to '{out}'"),
    ("file", ".mirrord is a regular file"),
])
def test_a_mirrord_area_that_is_no_directory_is_named_in_the_root_refusal(tmp_path, mirror,
                                                                          shape, words):
    out = tmp_path / "outside"
    os.rmdir(mirror / ".mirrord")
    if shape == "symlink":
        os.symlink(out, mirror / ".mirrord")
    else:
        (mirror / ".mirrord").write_text("x")
    hb, error = heartbeat.fetch(load(ini(tmp_path)), "mirror", timeout=10)
    (age,) = heartbeat.judge(hb, error, target="mirror", now=time.time(), max_age=60,
                             severity=WARN)
    assert hb is None and words.format(out=out) in age.message, age.message
    assert age.refuses and procedure.forceable(age)    # the refusal it was, only --force


def test_an_absent_heartbeat_is_still_called_absent(tmp_path, mirror):
    hb, error = heartbeat.fetch(load(ini(tmp_path)), "mirror", timeout=10)
    (age,) = heartbeat.judge(hb, error, target="mirror", now=time.time(), max_age=60)
    assert age.message == "no heartbeat.json on target mirror: is mirrord running on the primary?"


def test_failover_dry_run_prints_it(tmp_path, mirror, capsys):
    (mirror / HB).mkdir()
    assert main(["-c", str(ini(tmp_path)), "failover", "--dry-run"]) == 3   # the replica
    line = next(x for x in capsys.readouterr().out.splitlines() if " heartbeat.age " in x)
    assert line.split()[0] == "WARN" and f"{HB} is a directory, not a heartbeat file" in line


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), RuntimeError("ssh cut")])
def test_a_failing_look_never_takes_the_place_of_the_root_refusal(tmp_path, mirror, monkeypatch,
                                                                  error):
    """A review: meta_kind ran before the missing-root refusal, and its own failure (an
    rsync target's extra ssh command) turned that FAIL into a WARN. The look only words
    a message: when it fails, the refusal stands without its words."""
    from mirrord.targets.local import LocalTarget

    def failing(self, name):
        raise error
    monkeypatch.setattr(LocalTarget, "meta_kind", failing)
    os.rmdir(mirror / ".mirrord")
    (mirror / ".mirrord").write_text("x")
    hb, error_text = heartbeat.fetch(load(ini(tmp_path)), "mirror", timeout=10)
    (age,) = heartbeat.judge(hb, error_text, target="mirror", now=time.time(), max_age=60,
                             severity=WARN)
    assert age.refuses and procedure.forceable(age), age


def test_a_failing_look_leaves_an_absent_heartbeat_absent(tmp_path, mirror, monkeypatch):
    from mirrord.targets.local import LocalTarget

    def failing(self, name):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(LocalTarget, "meta_kind", failing)
    hb, error = heartbeat.fetch(load(ini(tmp_path)), "mirror", timeout=10)
    (age,) = heartbeat.judge(hb, error, target="mirror", now=time.time(), max_age=60)
    assert age.message == "no heartbeat.json on target mirror: is mirrord running on the primary?"
