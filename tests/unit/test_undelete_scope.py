"""`mirrord undelete` refuses a PATH naming a whole target and a time window no version can
be in (exit 2, one line); everything is restored only with an explicit --all.

Before: `undelete ""` and `undelete .` (a script's `undelete "$DIR"` with DIR unset)
restored the ENTIRE trash, exit 0; `--since 1h --before 2h` said "nothing kept" (exit 1),
as if the trash were empty.
"""

from __future__ import annotations

import pytest

from mirrord.cli import main as cli_main
from tests.unit.test_undelete import T0, cfg, change, fake, put  # noqa: F401 - fixtures


def _two_deleted(target) -> None:
    put(target, "site/up/x/1", b"one", T0)
    put(target, "site/media.jpg", b"two", T0)
    change(target, "site/up/x/1", T0 + 1, None)
    change(target, "site/media.jpg", T0 + 1, None)


def _one_usage_line(capsys, *words: str) -> None:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err


@pytest.mark.parametrize("path", ["", ".", "./", "./.", ".//"])
@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["--to-source"]])
def test_a_path_naming_the_whole_target_is_refused(fake, capsys, path, extra):  # noqa: F811 - the imported fixture
    _two_deleted(fake)
    assert cli_main.main(["undelete", *extra, path]) == 2
    _one_usage_line(capsys, "names everything", "--all")
    assert "site/up/x/1" not in fake.files and "site/media.jpg" not in fake.files


def test_an_empty_path_beside_a_real_one_is_refused_too(fake, capsys):  # noqa: F811 - the imported fixture
    _two_deleted(fake)
    assert cli_main.main(["undelete", "site/up/x", ""]) == 2
    _one_usage_line(capsys, "names everything")
    assert "site/up/x/1" not in fake.files


def test_all_restores_everything_and_takes_no_path(fake, capsys):  # noqa: F811 - the imported fixture
    _two_deleted(fake)
    assert cli_main.main(["undelete", "--all", "site/up"]) == 2
    _one_usage_line(capsys, "--all restores everything")
    assert cli_main.main(["undelete"]) == 2
    _one_usage_line(capsys, "needs a PATH")
    assert not fake.files
    assert cli_main.main(["undelete", "--all"]) == 0
    assert fake.read("site/up/x/1") == b"one" and fake.read("site/media.jpg") == b"two"


@pytest.mark.parametrize("window", [
    ["--since", "1h", "--before", "2h"],
    ["--since", "1h", "--at", "2h"],
    ["--since", "2026-11-29T12:00:00Z", "--before", "2026-11-29T12:00:00Z"],   # [t, t) is empty
    ["--since", "2026-11-29T12:00:01Z", "--at", "2026-11-29T12:00:00Z"],
])
def test_an_impossible_window_is_a_usage_error(fake, capsys, window):  # noqa: F811 - the imported fixture
    _two_deleted(fake)
    assert cli_main.main(["undelete", *window, "site/up/x"]) == 2
    _one_usage_line(capsys, "--since", "no version can be in that window")
    assert "site/up/x/1" not in fake.files


def test_a_window_of_one_instant_with_at_is_kept(fake, capsys):  # noqa: F811 - the imported fixture
    """--since T --at T: versions changed exactly at T (both bounds inclusive)."""
    _two_deleted(fake)
    at = "2023-11-14T22:13:21Z"    # T0 + 1, when both were deleted
    assert cli_main.main(["undelete", "--since", at, "--at", at, "site/up/x"]) == 0
    assert fake.read("site/up/x/1") == b"one"


def test_a_source_root_with_no_dest_names_the_whole_target_too(monkeypatch, capsys, tmp_path):
    """`undelete /srv/uploads/$SUB` with SUB unset: the source root, which is everything
    the target keeps when the source has no dest."""
    from mirrord.cli import trash as trash_cli
    from mirrord.targets.memory import MemoryTarget

    (tmp_path / "src").mkdir()
    ini = tmp_path / "m.ini"
    ini.write_text(f"[mirrord]\nstate_dir = {tmp_path / 'state'}\n[source:up]\n"
                   f"path = {tmp_path / 'src'}\ntargets = t\n[target:t]\ntype = local\n"
                   f"path = {tmp_path / 'dst'}\nkeep_deleted = 7d\n")
    t = MemoryTarget("t")
    monkeypatch.setattr(trash_cli.target_registry, "create", lambda tcfg: t)
    put(t, "a", b"one", T0)
    change(t, "a", T0 + 1, None)
    assert cli_main.main(["-c", str(ini), "undelete", f"{tmp_path / 'src'}/"]) == 2
    _one_usage_line(capsys, "names everything")
    assert cli_main.main(["-c", str(ini), "undelete", str(tmp_path / "src" / "a")]) == 0
    assert t.read("a") == b"one"
