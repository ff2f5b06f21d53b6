"""Names mirrord prints (`[mirrord] hostname`, each [source:NAME] and [target:NAME], an
rsync `user`, an S3 `region` and `storage_class`) holding a control character are one
problem naming file, section and key; `hostname =` (empty) is one too, as every key whose
default is a value (mirrord/config/names.py).

Before: `hostname =` silently became this machine's name, and `hostname = a\\x01b`,
`[target:t\\x02x]` and the rest loaded and were printed as is (or with the character
dropped by the output's redaction: not the name configured)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mirrord.config import load
from tests.unit.test_config_hostile import only, problems

MIRRORD = Path(sys.executable).with_name("mirrord")
CONTROL = ["\x01", "\x1b", "\x7f", "\x85", "\u2028", "\t"]


def write(tmp_path: Path, mirrord: str = "", source: str = "up", target: str = "t",
          extra: str = "") -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / "m.ini"
    path.write_text(f"[mirrord]\nstate_dir = state\n{mirrord}\n[source:{source}]\npath = src\n"
                    f"targets = {target.strip()}\n[target:{target}]\ntype = local\n"
                    f"path = mirror\n{extra}")
    path.chmod(0o600)
    return path


def test_an_empty_hostname_is_a_problem(tmp_path):
    only(problems(write(tmp_path, "hostname =")), "mirrord", "hostname", "is empty")


def test_an_empty_hostname_through_check_config_is_exit_2(tmp_path):
    done = subprocess.run([str(MIRRORD), "-c", str(write(tmp_path, "hostname =")),
                           "check-config"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("[mirrord] hostname: is empty: write a value, or "
                                        "remove the line for the default")


def test_no_hostname_is_this_machines_name_and_one_written_is_kept(tmp_path):
    assert load(write(tmp_path)).mirrord.hostname == socket.gethostname()
    assert load(write(tmp_path, "hostname = web 1.example")).mirrord.hostname == "web 1.example"


@pytest.mark.parametrize("char", CONTROL, ids=lambda c: f"{ord(c):#x}")
def test_a_hostname_holding_a_control_character_is_a_problem(tmp_path, char):
    only(problems(write(tmp_path, f"hostname = a{char}b")), "mirrord", "hostname",
         f"control character ({ord(char):#04x})")


@pytest.mark.parametrize("char", CONTROL, ids=lambda c: f"{ord(c):#x}")
@pytest.mark.parametrize("kind", ["source", "target"])
def test_a_section_name_holding_a_control_character_is_a_problem(tmp_path, kind, char):
    name = f"a{char}b"
    path = write(tmp_path, **{kind: name})
    found = problems(path)
    only(found, f"{kind}:{name}", "", "control character")


@pytest.mark.parametrize("kind", ["source", "target"])
@pytest.mark.parametrize("name", [" t", "t ", " t "])
def test_a_section_name_with_a_space_at_an_end_is_a_problem(tmp_path, kind, name):
    found = problems(write(tmp_path, **{kind: name}))
    assert (f"{kind}:{name}", "", f"the name {name!r} has a space at an end; write "
            f"[{kind}:{name.strip()}]") in found, found


@pytest.mark.parametrize("key, shown", [("user", False), ("region", True),
                                        ("storage_class", True)])
def test_a_printed_word_holding_a_control_character_is_a_problem(tmp_path, key, shown):
    extra = ("[target:b]\ntype = s3\nbucket = bkt\n" if key != "user" else
             "[target:b]\ntype = rsync\nhost = mirror.example.org\npath = /srv/m\n")
    path = write(tmp_path, extra=extra + f"{key} = x\x01secret\n")
    text = path.read_text().replace("targets = t\n", "targets = t, b\n")
    path.write_text(text)
    found = problems(path)
    only(found, "target:b", key, "control character (0x01)")
    assert ("secret" in found[0][2]) == shown
