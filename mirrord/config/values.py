"""Value parsers (durations, sizes, booleans, lists, host:port) and the reader that
remembers every problem in the file instead of stopping at the first.
"""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path
from typing import Callable

from mirrord.config.model import T
from mirrord.errors import ConfigProblem

# ------------------------------------------------------------- value parsers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}


def parse_duration(text: str) -> float:
    """'500ms', '5s', '10m', '1h', '2d' or plain seconds -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use 500ms, 5s, 10m, 1h or plain seconds)")
    return float(m.group(1)) * _UNITS[m.group(2)]


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
    return int(m.group(1)) * {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]


def parse_positive_int(text: str) -> int:
    value = int(text.strip())
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int]:
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"not host:port: {text!r}")
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {text!r}")
    return host, int(port)


def parse_every(text: str) -> float:
    if text.strip().lower() in ("", "0", "off", "no", "never"):
        return 0.0
    return parse_duration(text)


# ------------------------------------------------------------------- reader


class _Reader:
    """Reads one INI file, remembering every problem instead of stopping at the first."""

    def __init__(self, path: Path, parser: configparser.RawConfigParser):
        self.file = path
        self.base = path.parent
        self.parser = parser
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def problem(self, section: str, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(str(self.file), section, key, message))

    def raw(self, section: str, key: str, default: str | None = None) -> str | None:
        if self.parser.has_option(section, key):
            return self.parser.get(section, key).strip()
        return default

    def get(self, section: str, key: str, conv: Callable[[str], T], default: T) -> T:
        text = self.raw(section, key)
        if text is None or text == "":
            return default
        try:
            return conv(text)
        except ValueError as exc:
            self.problem(section, key, str(exc))
            return default

    def required(self, section: str, key: str) -> str:
        text = self.raw(section, key)
        if not text:
            self.problem(section, key, "is required")
            return ""
        return text

    def path(self, section: str, key: str, *, required: bool = False,
             follow_links: bool = True) -> Path | None:
        text = self.required(section, key) if required else self.raw(section, key)
        if not text:
            return None
        if not follow_links:  # the path names a symlink itself (failover `link`): keep it
            return Path(os.path.abspath(self.base / os.path.expanduser(text)))
        return (self.base / os.path.expanduser(text)).resolve()

    def check_keys(self, section: str, allowed: set[str]) -> None:
        for key in self.parser.options(section):
            if key not in allowed:
                self.problem(section, key, f"unknown key (known: {', '.join(sorted(allowed))})")
