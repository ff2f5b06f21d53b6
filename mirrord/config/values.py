"""Value parsers (durations, sizes, booleans, lists; host:port and ports: hostport.py) and
the reader that remembers every problem in the file instead of stopping at the first.
"""

from __future__ import annotations

import configparser
import io
import os
import re
import shlex
import threading
from pathlib import Path
from typing import Callable

from mirrord.config.model import T
from mirrord.errors import ConfigProblem
from mirrord.config.cmdline import command_secrets, shown_command  # noqa: F401 (re-exported)

# ------------------------------------------------------------- value parsers

# what every key of mirrord's INI looks like (check_keys shows an unknown key only if so)
_KEY_SHAPED = re.compile(r"[a-z][a-z_]{0,39}")

# re.ASCII: `\d` alone also takes other scripts' digits ('٣' read as 3)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.ASCII)
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE | re.ASCII)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$", re.ASCII)
_COUNT = re.compile(r"^\s*(\d+)\s*$", re.ASCII)   # no sign: "+3" as durations, sizes
# The longest duration any setting may hold: threading.TIMEOUT_MAX (about 292 years on
# Linux). Longer ones overflowed where they were used, not where they were written:
# Event.wait and socket timeouts raise OverflowError, and `[reconcile] every = 99999999999999999999`
# made `mirrord run` die in schedule's timedelta with a traceback.
MAX_DURATION = threading.TIMEOUT_MAX
# The largest count any setting may hold: a C int. Counts are multiplied together and
# bound into SQL (workers x batch_size is a LIMIT): `workers = 99999999999999999999`
# left the daemon logging "Python int too large to convert to SQLite INTEGER" forever.
MAX_COUNT = 2**31 - 1
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}


def parse_duration(text: str) -> float:
    """'500ms', '5s', '10m', '1h', '2d' or plain seconds -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use 500ms, 5s, 10m, 1h, 7d or plain seconds)")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds > MAX_DURATION:
        raise ValueError(f"too long: {text!r} (at most {MAX_DURATION / 86400 / 365:.0f} years)")
    return seconds


def parse_timeout(text: str) -> float:
    """A duration that must be greater than zero (a timeout): 0 would make every
    connect, request or hook fail at once instead of meaning "no timeout"."""
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {text!r}")
    return seconds


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def parse_size(text: str) -> int:
    """'8MiB', '64M', '1024' -> bytes (binary multiples)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (use 8MiB, 64M or plain bytes)")
    unit = (m.group(2) or "b").lower()[0]
    return _whole(m.group(1), text) * {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]


def _whole(digits: str, text: str) -> int:
    """int(`digits`), a run of ASCII digits from `text`; ValueError naming `text` when it
    has more than 19 digits after its leading zeros (more than any value a key takes):
    int() refuses over 4,300 in Python's own words ("Exceeds the limit (4300 digits) for
    integer string conversion; use sys.set_int_max_str_digits()": a review, helper-144)."""
    if len(digits.lstrip("0")) > 19:
        raise ValueError(f"too large: {text[:40]!r}{'...' if len(text) > 40 else ''}")
    return int(digits)


def parse_count(text: str) -> int:
    """A whole number of ASCII digits, 0 to MAX_COUNT -> int; ValueError otherwise (int()
    alone also took '1_000', '٣' and numbers too large for SQLite; a sign, '+3', was
    taken here while '+5s', '+8MiB' and '+5%' were refused: a review, helper-153)."""
    m = _COUNT.match(text)
    if not m:
        raise ValueError(f"not a whole number: {text!r}")
    value = _whole(m.group(1), text)
    if value > MAX_COUNT:
        raise ValueError(f"too large: {text!r} (at most {MAX_COUNT})")
    return value


def parse_positive_int(text: str) -> int:
    """A count of at least 1 (see parse_count)."""
    value = parse_count(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def parse_percent(text: str, *, zero_ok: bool) -> float:
    """'5%' or '12.5%' -> 5.0 / 12.5; above 100, or 0 unless `zero_ok`, is a ValueError."""
    m = _PERCENT.match(text)
    if not m:
        raise ValueError(f"not a percentage: {text!r}")
    percent = float(m.group(1))
    if percent > 100 or (percent == 0 and not zero_ok):
        raise ValueError(f"percentage out of range: {text!r}")
    return percent


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def parse_command(text: str) -> str:
    """A command line split like argv (shlex, as the code that runs it splits it) -> the
    text. ValueError for an unclosed quote, no program (`''`) or a first word that is an
    environment assignment (`PGPASSWORD=x psql ...`: run without a shell it is taken as
    the program's name, and fails only when run, after failover's flip for
    reload_command), and a program given as a relative path (`./bin/reload`: run from
    the working directory, / under systemd, never the config's directory the README's
    relative-path rule names); found here, not when the command runs. No message
    repeats the text."""
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split into a command line: {exc}") from None
    if not argv or not argv[0]:
        raise ValueError("cannot split into a command line: no program to run")
    if "/" in argv[0] and not argv[0].startswith("/"):
        raise ValueError("its program is a relative path: commands run from the daemon's "
                         "working directory (systemd's is /), not the config file's; write "
                         "the program's absolute path, or a name found on PATH")
    if _ASSIGNMENT.match(argv[0]):
        name = argv[0].partition("=")[0]
        # the value is never shown, nor a placeholder after '=' (the output's redaction of
        # NAME=VALUE took the punctuation with it: "SSHPASS=*** commands run ...")
        raise ValueError(f"starts with an assignment to the environment variable {name}; "
                         f"commands run without a shell, so put `env` before it (env, "
                         f"the assignment, then the program)")
    return text


def parse_every(text: str) -> float:
    if text.strip().lower() in ("", "0", "off", "no", "never"):
        return 0.0
    return parse_duration(text)


# ------------------------------------------------------------------- reader


# Defaults an empty value may stand for (`prefix =`, `memcached =`): nothing. Any other
# (a count, duration, yes/no, a name) is refused empty: _Reader.empty_refused.
EMPTY_MEANS_DEFAULT = ("", (), None)


class _Reader:
    """Reads one INI file, remembering every problem instead of stopping at the first."""

    def __init__(self, path: Path, parser: configparser.RawConfigParser):
        self.file = path
        # the config's directory with its symlinks resolved: relative paths are joined to
        # it, so `..` means what the kernel makes of it for every key alike. Joined to the
        # path as given (`-c link/f.ini`, link -> real/conf), `../src` went lexically to
        # link's parent for the keys kept as written (source roots, failover `link`) and
        # to real/ for the resolved ones, in one file (a breaker)
        self.base = Path(os.path.realpath(path.parent))
        self.parser = parser
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def problem(self, section: str, key: str, message: str) -> None:
        found = ConfigProblem(str(self.file), section, key, message)
        if found not in self.problems:   # a key read twice is still one problem
            self.problems.append(found)

    def raw(self, section: str, key: str, default: str | None = None) -> str | None:
        """The value as written, stripped; `default` when the key is absent. A value
        that runs onto a second line is a problem (configparser joins an indented line
        to the key above it: a stray indent silently became part of a path or a list)."""
        if not self.parser.has_option(section, key):
            return default
        text = self.parser.get(section, key).strip()
        if "\n" in text:
            self.problem(section, key, "continues onto the next line (an indented line "
                         "belongs to the key above it); write the value on one line")
            return text.split("\n", 1)[0].strip()
        return text

    def get(self, section: str, key: str, conv: Callable[[str], T], default: T) -> T:
        """The value converted by `conv`; `default` when absent. Written empty, `default`
        only when that is nothing (EMPTY_MEANS_DEFAULT), else also a problem (empty_refused).
        A text key with a default (`watcher`): get(section, key, str, "auto")."""
        text = self.raw(section, key)
        if not text:
            if text == "" and default not in EMPTY_MEANS_DEFAULT:
                self.empty_refused(section, key)
            return default
        try:
            return conv(text)
        except ValueError as exc:
            self.problem(section, key, str(exc))
            return default

    def empty_refused(self, section: str, key: str) -> None:
        """A key written empty whose default is a value (`workers =` silently meant 8)."""
        self.problem(section, key, "is empty: write a value, or remove the line for the default")

    def required(self, section: str, key: str) -> str:
        text = self.raw(section, key)
        if not text:
            self.problem(section, key, "is required")
            return ""
        return text

    def path(self, section: str, key: str, *, required: bool = False,
             follow_links: bool = True, as_written: bool = False,
             own_name: bool = False) -> Path | None:
        """The path at section/key made absolute against the config's directory: resolved
        (symlinks followed), or with `follow_links` False kept as written (the path names
        a symlink itself: failover `link`), or with `as_written` resolved only to check
        it (a symlink loop is a problem) and returned as written (a source root that is
        a symlink a deploy switches), or with `own_name` its directory resolved and its
        final component kept (a file mirrord writes or removes: failover `flag`, never
        followed: a symlink planted there is refused when the file is read, not written
        through). None, with a problem recorded, when unusable."""
        text = self.required(section, key) if required else self.raw(section, key)
        if not text:
            return None
        try:
            if "\0" in text:   # abspath takes it; every system call later would refuse it
                raise ValueError("embedded null byte")
            written = Path(os.path.abspath(self.base / os.path.expanduser(text)))
            if not follow_links:  # the path names a symlink itself (failover `link`): keep it
                return written
            if own_name:
                if written.name in ("", ".", ".."):
                    raise ValueError("names a directory, not a file")
                return written.parent.resolve() / written.name
            resolved = (self.base / os.path.expanduser(text)).resolve()
            return written if as_written else resolved
        except (ValueError, RuntimeError, OSError) as exc:
            # ValueError: a NUL byte; RuntimeError: Path.resolve's symlink loop (3.11);
            # OSError: a loop on later Pythons. Each was a traceback before.
            self.problem(section, key, f"not a usable path: {text!r} ({exc})")
            return None

    def check_keys(self, section: str, allowed: set[str]) -> None:
        """A problem for each key of `section` not in `allowed`. A key that is not shaped
        like one (every key is lower-case letters and '_') is not shown, only its line: a
        secret wrapped onto a line of its own that holds a ':' or '=' (`SECRET123/x=`,
        base64) reads as a key, and the error printed the secret (a review, helper-144)."""
        known = f"(known: {', '.join(sorted(allowed))})"
        for key in self.parser.options(section):
            if key in allowed:
                continue
            if _KEY_SHAPED.fullmatch(key):
                self.problem(section, key, f"unknown key {known}")
            else:
                line = self._line_of(section, key)
                at = f" on line {line}" if line else ""
                self.problem(section, "", f"unknown key{at} (not shown: it is not shaped like "
                                          f"a key name, and the line may hold a secret) {known}")

    def _line_of(self, section: str, key: str) -> int | None:
        """The number of the line of the file that writes `key` in `section` (keys compared
        as configparser reads them: before the first '=' or ':', stripped, lower-cased), or
        None when the file cannot be read again or the line is not found."""
        try:
            text = self.file.read_text(encoding="utf-8-sig", errors="replace")
        except OSError:
            return None
        current = None
        # lines as configparser reads them (io: \n, \r, \r\n), not str.splitlines, which
        # also breaks at a form feed or U+2028 (config.load._header_closed alike)
        for lineno, line in enumerate(io.StringIO(text, newline=None), 1):
            line = line.rstrip("\n")
            header = configparser.RawConfigParser.SECTCRE.match(line)
            if header:
                current = header.group("header")
            elif current == section and line[:1] not in ("", " ", "\t", "#", ";"):
                name = re.split(r"[=:]", line, maxsplit=1)[0].strip().lower()
                if name == key:
                    return lineno
        return None
