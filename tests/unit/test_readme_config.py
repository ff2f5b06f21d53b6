"""README's "Configuration reference" against the loader: every key the README lists is
one the loader accepts in that section and every key the loader accepts is listed; a
default the README gives in backticks is the one the loader uses; a "(required)" key is
refused when missing; a default written as "(none)", "(empty)", "(off)" leaves the
setting empty. A new key, a renamed one or a changed default fails here until the README
says the same (a new operator configures from that table, not from the code)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mirrord.config import failover as failover_keys
from mirrord.config import load
from mirrord.config import sections as section_keys
from mirrord.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"

# README table heading -> (the loader's key set, a minimal valid config of that section
# without the key under test, how to pick the section's settings out of the Config)
_TARGET = "[source:up]\npath = src\ntargets = t\n"
CASES = {
    "mirrord": (section_keys._MIRRORD_KEYS, "[mirrord]\n", lambda c: c.mirrord),
    "source": (section_keys._SOURCE_KEYS,
               _TARGET + "[target:t]\ntype = local\npath = dst\n",
               lambda c: c.sources[0]),
    "target": (section_keys._COMMON_TARGET_KEYS, _TARGET + "[target:t]\ntype = local\npath = dst\n",
               lambda c: c.targets["t"]),
    "local": (section_keys._TARGET_KEYS["local"],
              _TARGET + "[target:t]\ntype = local\npath = dst\n", lambda c: c.targets["t"].local),
    "s3": (section_keys._TARGET_KEYS["s3"], _TARGET + "[target:t]\ntype = s3\nbucket = mirror\n",
           lambda c: c.targets["t"].s3),
    "rsync": (section_keys._TARGET_KEYS["rsync"],
              _TARGET + "[target:t]\ntype = rsync\nhost = mirror.example.org\npath = /srv/m\n",
              lambda c: c.targets["t"].rsync),
    "reconcile": (section_keys._RECONCILE_KEYS, "[reconcile]\n", lambda c: c.reconcile),
    "failover": (failover_keys._FAILOVER_KEYS,
                 ("[failover]\ndatabase = dbname=wiki\nlink = app/cfg\nreadonly = app/ro\n"
                  "readwrite = app/rw\n"), lambda c: c.failover),
    "health": (failover_keys._HEALTH_KEYS, "[health]\n", lambda c: c.health),
}
EMPTY_WORDS = ("(none", "(empty)", "(off)", "(AWS", "(ssh default)", "(bucket default)",
               "(system)")


def readme_tables() -> dict[str, dict[str, str]]:
    """{table: {key: default cell}} from the README's configuration reference; a table is
    a `### [section]` heading or a `type = X` paragraph (the target type's own keys)."""
    text = README.read_text()
    ref = text[text.index("## Configuration reference"):text.index("\n## Install")]
    tables: dict[str, dict[str, str]] = {}
    current = None
    for line in ref.splitlines():
        heading = re.match(r"###+ `\[([a-z]+)(?::NAME)?\]`", line)
        kind = re.match(r"`type = (\w+)`", line)
        if heading or kind:
            current = (heading or kind).group(1)
        elif current and line.startswith("| `"):
            cells = line.split("|")
            for key in re.findall(r"`([a-z_]+)`", cells[1]):
                assert key not in tables.setdefault(current, {}), f"{key} listed twice"
                tables[current][key] = cells[2].strip()
    return tables


TABLES = readme_tables()
ROWS = [(table, key, default) for table, rows in TABLES.items() for key, default in rows.items()]


def _load(tmp_path: Path, text: str):
    path = tmp_path / "mirrord.ini"
    path.write_text(text)
    path.chmod(0o600)
    return load(path)


def test_every_section_has_a_table():
    assert set(TABLES) == set(CASES)


@pytest.mark.parametrize("table", sorted(CASES))
def test_readme_lists_exactly_the_keys_the_loader_accepts(table):
    keys, _, _ = CASES[table]
    listed = set(TABLES[table])
    assert listed - keys == set(), "documented but refused by the loader"
    assert keys - listed == set(), "accepted by the loader but missing from the README"


def edit(table: str, key: str, value: str | None) -> str:
    """The table's base config with `key = value` set in its section (None: removed)."""
    _, base, _ = CASES[table]
    header = {"source": "[source:up]", "mirrord": "[mirrord]", "reconcile": "[reconcile]",
              "failover": "[failover]", "health": "[health]"}.get(table, "[target:t]")
    lines, out, inside = base.splitlines(), [], False
    for line in lines:
        if line.startswith("["):
            inside = line == header
        if not (inside and line.startswith(f"{key} = ")):
            out.append(line)
        if line == header and value is not None:
            out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("table,key,default", [r for r in ROWS if re.match(r"`[^`\[]+`", r[2])])
def test_a_documented_default_is_the_loaders_default(tmp_path, table, key, default):
    """Setting the key to the default the README shows changes nothing."""
    _, base, pick = CASES[table]
    value = re.match(r"`([^`]+)`", default).group(1)
    assert pick(_load(tmp_path, edit(table, key, value))) == pick(_load(tmp_path, base))


@pytest.mark.parametrize("table,key", [(t, k) for t, k, d in ROWS if d == "(required)"])
def test_a_required_key_is_refused_when_missing(tmp_path, table, key):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, edit(table, key, None))
    assert any(p.key == key for p in info.value.problems)


@pytest.mark.parametrize("table,key", [(t, k) for t, k, d in ROWS
                                       if d.startswith(EMPTY_WORDS) or d == "`0` (off)"])
def test_a_default_of_none_leaves_the_setting_empty(tmp_path, table, key):
    _, base, pick = CASES[table]
    settings = pick(_load(tmp_path, base))
    value = settings.hook(key) if key in failover_keys.HOOK_NAMES else getattr(settings, key)
    assert not value, f"{key} defaults to {value!r}, the README says it is unset"


def test_check_config_shows_every_section_the_readme_documents(tmp_path, capsys):
    """`mirrord check-config --json` prints "what was understood": a section left out
    ([health] was) is one an operator cannot check before `mirrord health` runs."""
    import argparse
    import json

    from mirrord.cli import check_config

    text = "".join(CASES[t][1] for t in ("mirrord", "source", "reconcile", "failover"))
    cfg = _load(tmp_path, text + "[health]\nlisten = 127.0.0.1:9199\ninterval = 3s\n")
    assert check_config.run(argparse.Namespace(json=True), cfg) == 0
    doc = json.loads(capsys.readouterr().out)
    sections = {"source": "sources", "target": "targets", "local": "targets", "s3": "targets",
                "rsync": "targets"}
    for table in TABLES:
        assert doc.get(sections.get(table, table)), f"check-config --json has no {table}"
    assert doc["health"] == {"listen": ["127.0.0.1", 9199], "interval": 3.0}
    assert check_config.run(argparse.Namespace(json=False), cfg) == 0
    assert "  health: listen 127.0.0.1:9199, checks at most every 3s" in capsys.readouterr().out


def test_check_config_writes_an_ipv6_listen_address_in_brackets(tmp_path, capsys):
    import argparse

    from mirrord.cli import check_config

    cfg = _load(tmp_path, "[mirrord]\nmetrics_listen = [::1]:9464\n" + CASES["failover"][1]
                + "[health]\nlisten = [::1]:9188\n")
    assert check_config.run(argparse.Namespace(json=False), cfg) == 0
    out = capsys.readouterr().out
    assert "metrics on [::1]:9464" in out and "health: listen [::1]:9188," in out


@pytest.mark.parametrize("table,key,default", [
    r for r in ROWS if r[2] and r[2] != "(required)" and not r[2].startswith(EMPTY_WORDS)])
def test_a_key_whose_default_is_a_value_is_refused_empty(tmp_path, table, key, default):
    """The README: "A key written with no value is an error when its default is a value"
    (`hostname =` silently became this host's name). Every row whose default cell is a
    value, not nothing, written empty: a problem at that key."""
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, edit(table, key, ""))
    assert any(p.key == key and "is empty" in p.message for p in info.value.problems), \
        info.value.problems
