"""Control characters from outside mirrord never reach the operator's terminal raw.

The installed `mirrord` script runs as a real process against the real PostgreSQL pair
and memcached (test_failover_cli's site). Text from outside mirrord printed on stdout or
stderr: a hook's output, reload_command's output, the heartbeat's `reason` (written on
the primary). Before, an ESC sequence in it was printed raw: `\\e[2J` cleared the screen,
and a hook printing the password split by `\\e[0m` showed it whole on a terminal while
the redaction, matching the raw text, saw no password. Now every control character but
tab and newline is shown as `\\xNN`, and a password split by control sequences is masked.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.e2e.test_failover_cli import ini, run  # noqa: F401 (fixture)
from tests.services.postgres import PASSWORD

ESC = "\x1b"
# what a terminal would show: ESC sequences and CR consumed
_RENDERED = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b.|\r")


def _configure(config: Path, **keys: str) -> None:
    with open(config, "a") as f:
        for key, value in keys.items():
            f.write(f"{key} = {value}\n")


def _printf_command(text: str, code: int = 0) -> str:
    """A command line printing `text` (octal escapes for printf) and exiting `code`."""
    return f"/bin/sh -c 'printf \"{text}\"; exit {code}'"


def _assert_clean(out: str) -> None:
    assert ESC not in out and "\r" not in out, out
    assert PASSWORD not in _RENDERED.sub("", out), out


def test_hook_and_reload_output_are_escaped_and_a_split_password_masked(ini):  # noqa: F811
    split = f"{PASSWORD[:8]}\\033[0m{PASSWORD[8:]}"
    _configure(ini, pre_failover=_printf_command(f"db {split}\\n\\033[2Jcleared\\n"),
               post_failover=_printf_command(f"cr {PASSWORD[:8]}\\r{PASSWORD[8:]}\\n"
                                             f"tab\\tkept\\n"))
    with open(ini) as f:
        text = f.read().replace("reload_command = true",
                                "reload_command = " + _printf_command("\\033[31mRED\\n", 1))
    ini.write_text(text)
    proc = run(ini, "failover")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out           # the reload failed: a step failed
    _assert_clean(out)
    assert "\\x1b[2Jcleared" in out             # shown, escaped
    assert "\\x1b[31mRED" in out                 # reload_command's output, escaped
    assert "db ***" in out and "cr ***" in out   # split passwords masked
    assert "tab\tkept" in out                    # a tab stays as it is


def _dry_run_with_reason(config: Path, reason: str) -> str:
    meta = config.parent / "mirror" / ".mirrord" / "heartbeat.json"
    doc = json.loads(meta.read_text())
    doc.update(unix=time.time(), state="degraded", reason=reason)
    meta.write_text(json.dumps(doc))
    proc = run(config, "failover", "--dry-run")
    return proc.stdout + proc.stderr


def test_dry_run_escapes_the_heartbeats_reason(ini):  # noqa: F811
    out = _dry_run_with_reason(ini, f"{ESC}[2J{ESC}[32mall fine{ESC}[0m\x9b2J")
    _assert_clean(out)
    assert "\\x1b[2J\\x1b[32mall fine\\x1b[0m\\x9b2J" in out


def test_dry_run_masks_a_password_split_by_an_esc_sequence_in_the_reason(ini):  # noqa: F811
    out = _dry_run_with_reason(ini, f"all fine {PASSWORD[:8]}{ESC}[0m{PASSWORD[8:]}")
    _assert_clean(out)
    assert "not in sync: all fine ***" in out
