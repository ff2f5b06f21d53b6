"""Dispatch: parse arguments, load the config once, run the command, map errors to exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error (message
names file, section and key; never a traceback), 3 a refused precondition,
130 interrupted (Ctrl-C). mirrord.cli.main is the entry point around it: it
imports this module only once it can turn a Ctrl-C into exit 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from mirrord import __version__
from mirrord.cli import output
from mirrord.config import Config, find_config, load
from mirrord.errors import (
    ConfigError,
    FailoverRefused,
    FatalError,
    JournalError,
    JournalUnusable,
    MirrordError,
    StateDirError,
)
from mirrord.logsetup import redact, setup_logging

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
# 128 + SIGINT: what a shell reports for a command Ctrl-C stopped (bash(1), EXIT STATUS)
EXIT_INTERRUPTED = 130

# subcommand name -> module under mirrord.cli (each module registers one or more parsers)
COMMAND_MODULES = ["run", "status", "check_config", "reconcile", "failover", "health",
                   "trash", "undelete", "resume"]
COMMANDS = {"run": "run", "status": "status", "check-config": "check_config",
            "reconcile": "reconcile", "failover": "failover", "switchover": "failover",
            "failback": "failover", "health": "health", "trash": "trash", "undelete": "undelete",
            "resume-deletes": "resume"}

log = logging.getLogger("mirrord")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep one line, no usage dump
        words = message.partition("unrecognized arguments: ")[2].split()
        if any(w in ("-c", "--config") or w.startswith(("-c", "--config=")) for w in words):
            # `mirrord status -c FILE`: said only "unrecognized arguments" (a new user)
            message += " (-c/--config goes before the command: mirrord -c FILE COMMAND ...)"
        sys.stderr.write(f"mirrord: {message}\n(see mirrord --help)\n")
        sys.exit(EXIT_USAGE)


def _config_path(text: str) -> str:
    """-c's value; an empty one (`-c "$CONF"` with CONF unset) is a usage error: it read as
    no -c at all and silently loaded ./mirrord.ini or /etc/mirrord/mirrord.ini instead."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return text


def target_name(text: str) -> str:
    """--target's value; an empty one (`--target "$T"` with T unset) is a usage error: it
    was looked up and said "--target : there is no [target:] section"."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty target name")
    return text


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line parser: every subcommand, or with `only` (a module of
    COMMAND_MODULES) just that module's, so a command imports no other command's modules
    (`mirrord run` watches its sources sooner; `mirrord status`, polled by monitoring,
    starts faster)."""
    parser = _Parser(prog="mirrord", description="Keeps a read-only mirror ready to take over.")
    parser.add_argument("-c", "--config", type=_config_path,
                        help="config file (default: $MIRRORD_CONFIG, "
                        "./mirrord.ini, /etc/mirrord/mirrord.ini)")
    parser.add_argument("--version", action="version", version=f"mirrord {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in [only] if only else COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mirrord.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mirrord.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    path = find_config(args.config)
    cfg = load(path)
    for warning in cfg.warnings:
        print(f"mirrord: warning: {warning}", file=sys.stderr)
    return cfg


def command_module(argv: list[str]) -> str | None:
    """The module of the subcommand `argv` names (its first word that is not an option or
    the value of -c/--config), None when there is none or it is unknown: then the full
    parser answers (help, usage errors)."""
    words = iter(argv)
    for word in words:
        if word in ("-c", "--config"):
            next(words, None)
        elif not word.startswith("-"):
            return COMMANDS.get(word)
    return None


def _unencodable_names_written() -> None:
    """A file name that is not UTF-8 (os.fsdecode's surrogates) is written as its own bytes,
    as ls and rsync show it, and a character the output's encoding lacks as a backslash
    escape. Under a strict stdout (LANG=en_US.UTF-8, PYTHONIOENCODING=utf-8) such a name in
    `mirrord status`, `trash` or check-config's exclude preview was a UnicodeEncodeError
    traceback."""
    stream = sys.stdout
    if stream is None or not hasattr(stream, "reconfigure") or stream.errors != "strict":
        return
    utf8 = stream.encoding.lower().replace("-", "") == "utf8"
    stream.reconfigure(errors="surrogateescape" if utf8 else "backslashreplace")


def _standard_fds_open() -> None:
    """Open /dev/null on any of fds 0-2 that is closed (`mirrord run >&-`, a supervisor
    that closed them): the next file mirrord opened took that number, so a child's output
    (ssh, rsync) or a stray write to stdout went into it, the state database or a file
    being shipped. open(2) returns the lowest free number, which is the one checked."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)
    # Python sets sys.stdout / sys.stderr to None when fd 1 / 2 was closed at its start:
    # print() then writes nothing, but a flush or a log handler raised AttributeError
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process exits
        output.stdout_closed_at_start = True
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until the process exits


def _config_errors(exc: ConfigError) -> int:
    """Print a ConfigError's problems, then its warnings, to stderr -> EXIT_USAGE."""
    for problem in exc.problems:
        print(f"mirrord: config error: {problem}", file=sys.stderr)
    for warning in exc.warnings:
        print(f"mirrord: warning: {warning}", file=sys.stderr)
    return EXIT_USAGE


def dispatch(argv: list[str]) -> int:
    """Run the command `argv` (the arguments after the program name) names -> its exit code.
    KeyboardInterrupt is left to the caller (mirrord.cli.main), which also sees the ones
    raised while this module and the command's modules are imported."""
    _standard_fds_open()
    _unencodable_names_written()
    parser = build_parser(command_module(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with output.redacted_streams():
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    """Load the config and run the command `args` names -> its exit code; every error a
    command raises that is the operator's or the environment's is one line (see the module
    docstring). Output is redacted by the caller (output.redacted_streams)."""
    try:
        cfg = load_config(args)
    except ConfigError as exc:
        return _config_errors(exc)
    output.register_config_secrets(cfg)
    setup_logging(cfg.mirrord.log_level, cfg.mirrord.log_format,
                  verbose=getattr(args, "verbose", False), stream=output.raw(sys.stderr))
    try:
        code = int(args.func(args, cfg))
        sys.stdout.flush()   # here, not at exit: a failed write is reported like any other
        return code
    except ConfigError as exc:
        return _config_errors(exc)
    except StateDirError as exc:   # a config error found by using it: exit 2, the key named
        print(f"mirrord: config error: {cfg.path}: [mirrord] state_dir: {exc}",
              file=sys.stderr)
        return EXIT_USAGE
    except FailoverRefused as exc:
        print(f"mirrord: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except JournalUnusable as exc:   # damaged, a directory, cannot be opened: the operator's
        print(f"mirrord: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (JournalError, FatalError) as exc:
        print(f"mirrord: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except MirrordError as exc:
        print(f"mirrord: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        # `mirrord trash | head`: the reader left; say nothing more
        output.drop_stdout()
        return EXIT_FAILURE
    except OSError as exc:
        # an I/O failure no command turned into a MirrordError: most often the output itself
        # (`mirrord status --json > file` on a full disk: ENOSPC), which was a traceback.
        # Output that could not be written is dropped, so the exit flush cannot raise again.
        if sys.stdout is not None:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process exits
        print(f"mirrord: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE
