"""The redactor never mangles mirrord's own messages that NAME a key.

Before: a config problem's location, `[target:loc] secret_access_key: access_key_id and
secret_access_key go together`, matched the `secret_access_key: VALUE` pattern and came
out `secret_access_key: *** and secret_access_key go together` (a breaker). Every INI key
named in a problem's location, every message template in mirrord/ (an AST scan: every
string and f-string but docstrings and regular expressions, and every `problem(section,
key, message)` formatted as ConfigProblem formats it) must pass redact unchanged, while
a value written after such a key is still masked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mirrord
from mirrord.config import (
    _COMMON_TARGET_KEYS,
    _FAILOVER_KEYS,
    _HEALTH_KEYS,
    _MIRRORD_KEYS,
    _RECONCILE_KEYS,
    _SOURCE_KEYS,
    _TARGET_KEYS,
)
from mirrord.errors import ConfigError, ConfigProblem
from mirrord.logsetup import redact

ALL_KEYS = sorted(set().union(_COMMON_TARGET_KEYS, _FAILOVER_KEYS, _HEALTH_KEYS, _MIRRORD_KEYS,
                              _RECONCILE_KEYS, _SOURCE_KEYS, *_TARGET_KEYS.values()))
MESSAGES = ["access_key_id and secret_access_key go together",
            "holds ' ;', which starts a comment in this file: the value would be cut there",
            "must not be empty", "unknown key (known: a, b)"]


def test_the_breakers_message_reads_as_written():
    problem = ConfigProblem("/etc/mirrord.ini", "target:loc", "secret_access_key",
                            "access_key_id and secret_access_key go together")
    assert redact(str(problem)) == str(problem)
    assert redact(str(ConfigError([problem, problem]))) == str(ConfigError([problem, problem]))


@pytest.mark.parametrize("key", ALL_KEYS)
def test_a_problem_naming_any_key_reads_as_written(key):
    for message in MESSAGES:
        for section in ("target:loc", "failover", "source:up"):
            text = str(ConfigProblem("/etc/m.ini", section, key, message))
            assert redact(text) == text


@pytest.mark.parametrize("text, expected", [
    ("secret_access_key: wJalrXUtnFEMI", "secret_access_key: ***"),
    ("secret_access_key = wJalrXUtnFEMI", "secret_access_key = ***"),
    ("  aws_secret_access_key: wJalrXUtnFEMI", "  aws_secret_access_key: ***"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY=***"),
    ("[default] aws_secret_access_key=wJalrXUtnFEMI", "[default] aws_secret_access_key=***"),
])
def test_a_value_after_the_key_is_still_masked(text, expected):
    assert redact(text) == expected


def test_check_config_prints_the_problem_as_written(tmp_path, capsys):
    from mirrord.cli.dispatch import dispatch

    ini = tmp_path / "m.ini"
    ini.write_text(f"[source:up]\npath = {tmp_path}\ntargets = loc\n"
                   "[target:loc]\ntype = s3\nbucket = b\naccess_key_id = AKIAEXAMPLE\n")
    ini.chmod(0o600)
    assert dispatch(["-c", str(ini), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "[target:loc] secret_access_key: access_key_id and secret_access_key go together" \
        in err, err


# ------------------------------------------------------ every message template in mirrord/

def _template(node: ast.AST) -> list[str]:
    """The texts a string expression can be, each {placeholder} as X."""
    if isinstance(node, ast.IfExp):
        return _template(node.body) + _template(node.orelse)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return ["".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)]
    return []


def _messages(tree: ast.AST):
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))                          # a docstring
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re":
            skip.update(id(n) for n in ast.walk(node))           # a regular expression
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            at = {"problem": 1, "ConfigProblem": 2}.get(name)
            if at is not None and len(node.args) > at + 1:
                for key in _template(node.args[at]):
                    for message in _template(node.args[at + 1]):
                        yield str(ConfigProblem("/etc/m.ini", "target:x", key, message))
        elif id(node) not in skip and isinstance(node, (ast.Constant, ast.JoinedStr)):
            yield from _template(node)


def test_no_message_template_of_mirrord_is_rewritten_by_the_redactor():
    mangled = []
    for path in sorted(Path(mirrord.__file__).parent.rglob("*.py")):
        for text in _messages(ast.parse(path.read_text())):
            if redact(text) != text:
                mangled.append(f"{path.name}: {text!r} -> {redact(text)!r}")
    assert not mangled, "\n".join(mangled)
