"""The CLI's output: every line a command prints passes through logsetup.redact, as log lines do,
and has its control characters escaped (logsetup.shown_line; tab and newline kept).

dispatch installs `redacted_streams` around a command, so no print path (reconcile's
errors, trash, undelete, status, failover's report, a config error) can show a
credential the log would have masked: one place rather than each caller. It also
registers the secret values the config holds (`register_config_secrets`), so they are
masked by value wherever they turn up: a hook that echoes its own password, an ssh
ProxyCommand whose error repeats the token it was given.

A file's path is user data, not a message: printed with print_data or wrapped in
Verbatim, only the registered secret values are masked in it, so `mirrord trash` lists
`password=1.jpg` as it is named and undelete can be given what trash printed.

Text is redacted a whole line at a time (print() writes its arguments, separators and
end in separate calls: `--password` and its value may arrive apart). A JSON document is
redacted string by string before it is serialised (`print_json`): redacting the
serialised text could run a URL's userinfo rule across two strings and break the JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from mirrord.config.cmdline import register_command_secrets

# set by cli.dispatch when the process started with descriptor 1 closed (`>&-`): what
# is printed goes to /dev/null, and a command that must say its output was lost
# (mirrord.failover.procedure) reads this
stdout_closed_at_start = False
from mirrord.logsetup import mask_secrets, redact_doc, register_secret, shown_line


def print_data(text: str) -> None:
    """Print `text`, a line of user data (paths: `mirrord trash`, undelete's outcomes), to
    sys.stdout as it is but for the registered secret values (Verbatim's rule); any
    message in it must be redacted by the caller."""
    _write_as_is(mask_secrets(text) + "\n")


_output_lost = False


def drop_stdout() -> None:
    """Point file descriptor 1 at /dev/null: output that a reader left (EPIPE) or a full
    disk refused is dropped from here on, and the interpreter's exit flush cannot raise
    again (the Python documentation's advice for SIGPIPE). Never raises."""
    with contextlib.suppress(OSError, ValueError):
        fd = os.open(os.devnull, os.O_WRONLY)
        # sys.__stdout__ is None when the process started with fd 1 closed
        os.dup2(fd, 1 if sys.__stdout__ is None else sys.__stdout__.fileno())
        os.close(fd)


def print_or_drop(line: str) -> None:
    """print(line) to sys.stdout, for a command whose run must not stop when its output
    cannot be written (a reader that left: `| head -1`, EPIPE; a full disk): the rest of
    the output is dropped (stdout pointed at /dev/null, so the exit flush cannot raise
    again) and stderr says so once; the run goes on. `reconcile --dry-run | head -1` took
    the EPIPE of its second plan line for a failed listing of the target, and refused
    its deletes (a breaker)."""
    global _output_lost
    if _output_lost:
        return
    try:
        print(line, flush=True)
    except (OSError, ValueError) as exc:   # ValueError: the stream was closed
        _output_lost = True
        drop_stdout()
        with contextlib.suppress(OSError, ValueError):
            print(f"mirrord: warning: cannot write the output ({type(exc).__name__}: {exc}); "
                  f"the rest of it is dropped, the run goes on", file=sys.stderr, flush=True)


class RedactingStream:
    """A text stream writing each complete line of what it is given through redact to `raw`,
    its control characters escaped (logsetup.shown_line: a hook's output or a heartbeat's
    reason printed an ESC sequence to the operator's terminal raw).
    A partial line waits for its end, or for flush(). Anything else (fileno, encoding,
    isatty, ...) is `raw`'s."""

    def __init__(self, raw: TextIO):
        self.raw = raw
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            whole, _, self._pending = self._pending.rpartition("\n")
            self.raw.write("\n".join(shown_line(line) for line in whole.split("\n")) + "\n")
        return len(text)

    def write_verbatim(self, text: str) -> None:
        """Write `text` as it is (already redacted: print_json), after any pending part."""
        self.flush()
        self.raw.write(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self.raw.write(shown_line(pending))
        self.raw.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def raw(stream: TextIO) -> TextIO:
    """The stream under `stream` when it is a RedactingStream, else `stream` (log lines,
    redacted by their formatter already, go to it straight)."""
    return stream.raw if isinstance(stream, RedactingStream) else stream


@contextlib.contextmanager
def redacted_streams() -> Iterator[None]:
    """sys.stdout and sys.stderr redacted (RedactingStream) inside the block; what a
    partial line left is written and the streams put back at its end, whatever
    the block raised. A stream the block replaced itself (dispatch's devnull after a
    failed write) is left as the block set it."""
    out, err = sys.stdout, sys.stderr
    wrapped_out, wrapped_err = RedactingStream(out), RedactingStream(err)
    sys.stdout, sys.stderr = wrapped_out, wrapped_err
    try:
        yield
    finally:
        for wrapped, name, raw in ((wrapped_out, "stdout", out), (wrapped_err, "stderr", err)):
            if getattr(sys, name) is wrapped:
                setattr(sys, name, raw)
            with contextlib.suppress(OSError, ValueError):
                wrapped.flush()


def print_json(doc: Any, **dumps_args: Any) -> None:
    """Print `doc` as JSON (json.dumps with `dumps_args`) to sys.stdout, every string in it
    (keys too) redacted first (logsetup.redact_doc); the JSON stays valid whatever the
    strings held."""
    text = json.dumps(redact_doc(doc), **dumps_args) + "\n"
    _write_as_is(text)


def _write_as_is(text: str) -> None:
    """Write `text`, already masked, to sys.stdout past any RedactingStream's patterns."""
    stream = sys.stdout
    if isinstance(stream, RedactingStream):
        stream.write_verbatim(text)
    else:
        stream.write(text)


def register_config_secrets(cfg: Any) -> None:
    """Register with the redaction every secret value `cfg` (a Config) holds: S3 secret
    keys, and the values command_secrets finds in each command line (hooks,
    reload_command, ssh_command), in the failover conninfos (password=, a URI's userinfo)
    and in check_url's userinfo. Never raises: a value it cannot split is the config
    check's business (redact's patterns still apply to it)."""
    for target in cfg.targets.values():
        if target.s3 is not None and target.s3.secret_access_key:
            register_secret(target.s3.secret_access_key)
        if target.rsync is not None and target.rsync.ssh_command:
            register_command_secrets(target.rsync.ssh_command)
    fo = cfg.failover
    if fo is None:
        return
    for text in (fo.reload_command, *(cmd for _, cmd in fo.hooks), fo.database,
                 fo.primary_database, fo.check_url):
        if text:
            register_command_secrets(text)
