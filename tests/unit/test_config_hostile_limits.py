"""Values past what Python's own parsers take are one problem naming file, section and
key, in mirrord's words; a line that is not shaped like a key is not repeated back.

Found by a review (helper-144): `check_pattern = a{99999999999}` (over sre's repeat
limit) or thousands of nested groups was an OverflowError / RecursionError traceback, exit
1, on every command; a count of 5,000 digits was refused in Python's words ("Exceeds the
limit (4300 digits) ... sys.set_int_max_str_digits()"); `exclude = [[[[[[[[[]` printed re's
FutureWarning on every command; and a secret wrapped onto a line of its own holding a ':'
or '=' was read as a key and printed as one ("unknown key").
"""

from __future__ import annotations

import subprocess
import warnings

import pytest

from mirrord.config import load
from tests.unit.test_config_hostile import BASE, MARK, MIRRORD, COUNT_KEYS, only, problems, write

HUGE = "1" + "0" * 5000
SIZE_KEYS = [("target:bucket", "multipart_threshold"), ("target:bucket", "multipart_chunksize")]


def write_many(tmp_path, extra: dict[str, dict[str, str]], tail: str = ""):
    """BASE with the keys of `extra` set, and `tail` (raw lines) after [source:up]'s keys."""
    doc = {s: dict(kv) for s, kv in BASE.items()}
    for section, keys in extra.items():
        doc[section].update(keys)
    text = "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
                   + (tail if s == "source:up" else "") for s, kv in doc.items())
    return write(tmp_path, data=text.encode())


@pytest.mark.parametrize("section,key", COUNT_KEYS + SIZE_KEYS)
def test_a_number_of_thousands_of_digits_is_too_large_in_mirrords_words(tmp_path, section, key):
    found = problems(write(tmp_path, section, key, HUGE))
    only(found, section, key, "too large")
    assert "4300" not in found[0][2] and len(found[0][2]) < 200


@pytest.mark.parametrize("pattern", ["a{99999999999}", "x{4294967295}", "a{1,4294967296}",
                                     "(" * 5000 + ")" * 5000],
                         ids=["repeat", "repeat at 2**32-1", "range", "nested"])
def test_a_check_pattern_python_cannot_compile_is_a_problem(tmp_path, pattern):
    path = write_many(tmp_path, {"failover": {"check_url": "http://127.0.0.1:1/",
                                              "check_pattern": pattern}})
    only(problems(path), "failover", "check_pattern", "Python can compile")


def test_a_check_pattern_python_cannot_compile_exits_2_without_a_traceback(tmp_path):
    path = write_many(tmp_path, {"failover": {"check_url": "http://127.0.0.1:1/",
                                              "check_pattern": "a{99999999999}"}})
    for command in (["check-config"], ["status"], ["failover", "--dry-run"]):
        done = subprocess.run([str(MIRRORD), "-c", str(path), *command], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (command, done.stderr)
        assert "[failover] check_pattern" in done.stderr


def test_an_exclude_re_warns_about_is_taken_without_a_warning(tmp_path):
    path = write(tmp_path, "source:up", "exclude", "[[[[[[[[[]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(path)
    done = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], capture_output=True,
                          text=True, timeout=60)
    assert "Warning" not in done.stderr, done.stderr


@pytest.mark.parametrize("line", [f"{MARK}abc/def=", f"{MARK}:zz", f"{MARK}7 = 1", f"{MARK}=="],
                         ids=["base64 tail", "colon", "digits", "padding"])
def test_a_line_not_shaped_like_a_key_is_not_repeated(tmp_path, line):
    found = problems(write_many(tmp_path, {}, tail=line + "\n"))
    assert len(found) == 1, found
    section, key, message = found[0]
    assert section == "source:up" and key == "" and "on line 6" in message, found
    assert MARK.lower() not in message.lower() and "not shown" in message


@pytest.mark.parametrize("comment", ["# a form feed \x0c here", "# a line separator \u2028 here"])
def test_the_line_number_counts_lines_as_configparser_does(tmp_path, comment):
    """str.splitlines also breaks at a form feed or U+2028; configparser does not
    (helper-146: "line 8" named the next section's header)."""
    found = problems(write_many(tmp_path, {}, tail=f"{comment}\n{MARK}/x= 1\n"))
    assert len(found) == 1 and "on line 7" in found[0][2], found


def test_a_wrapped_uri_shows_only_its_scheme(tmp_path):
    """`https://u:SECRET@db/x` on a line of its own reads as the key `https`: named (it
    is shaped like a key), its value never shown."""
    found = problems(write_many(tmp_path, {}, tail=f"https://u:{MARK}@db:5432/x\n"))
    only(found, "source:up", "https", "unknown key")
    assert MARK not in found[0][2]


def test_a_mistyped_key_is_still_named(tmp_path):
    only(problems(write(tmp_path, "source:up", "alarm_delete", "5")), "source:up",
         "alarm_delete", "unknown key")
