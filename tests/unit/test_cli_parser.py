"""The command line parser imports only the command it runs (mirrord.cli.main
command_module): every subcommand must be reachable that way, and a word that is not a
command still gets the full parser's answer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mirrord.cli import main as cli


def _choices(parser) -> set[str]:
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return set(sub.choices)


def test_every_registered_command_is_mapped_to_the_module_that_registers_it():
    assert _choices(cli.build_parser()) == set(cli.COMMANDS)
    for command, module in cli.COMMANDS.items():
        assert command in _choices(cli.build_parser(module)), (command, module)


@pytest.mark.parametrize("argv, module", [
    (["run"], "run"),
    (["-c", "status", "run", "-v"], "run"),          # a config file named like a command
    (["--config", "x.ini", "undelete", "a"], "undelete"),
    (["--config=x.ini", "resume-deletes"], "resume"),
    (["switchover", "--dry-run"], "failover"),
    (["--help"], None),
    (["bogus"], None),
    ([], None),
])
def test_the_command_word_is_found_past_the_global_options(argv, module):
    assert cli.command_module(argv) == module


def test_mirrord_run_imports_no_other_command_before_it_watches(tmp_path):
    """Parsing `run` loads neither the daemon, the journal, reconcile nor the trash
    commands: those come after the sources are watched (cli/run.py)."""
    code = ("import sys; from mirrord.cli import main as m; m.build_parser(m.command_module(['run']))"
            ".parse_args(['run']); print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert "mirrord.cli.run" in loaded
    for heavy in ("mirrord.daemon", "mirrord.journal", "mirrord.reconcile", "mirrord.cli.trash",
                  "mirrord.cli.undelete",
                  "mirrord.cli.status", "boto3", "psycopg"):
        assert heavy not in loaded, heavy


@pytest.mark.parametrize("argv, hinted", [
    (["status", "-c", "x.ini"], True),
    (["reconcile", "--dry-run", "--config", "x.ini"], True),
    (["trash", "--config=x.ini"], True),
    (["status", "--bogus"], False),
])
def test_a_config_option_after_the_command_is_told_where_it_goes(capsys, argv, hinted):
    """`mirrord status -c FILE` said only "unrecognized arguments: -c FILE" (a new user)."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("mirrord: unrecognized arguments: ") and "Traceback" not in err
    assert ("-c/--config goes before the command: mirrord -c FILE COMMAND" in err) == hinted, err


@pytest.mark.parametrize("argv", [["reconcile", "--target", ""], ["trash", "--target", " "],
                                  ["undelete", "--target", "", "--all"]])
def test_an_empty_target_name_is_a_usage_error(capsys, argv):
    """`--target "$T"` with T unset said "--target : there is no [target:] section"."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["-c", "/nonexistent.ini", *argv])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("mirrord: argument --target: an empty target name")
