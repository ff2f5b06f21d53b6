"""`mirrord reconcile`'s progress line goes to the raw stderr: its `\\r` redraws are mirrord's
own text. Through the escaping stream (mirrord.cli.output, which shows control characters
from outside mirrord as `\\x0d`) a terminal showed one ever-growing line (a review)."""

from __future__ import annotations

import sys

from mirrord.cli import output
from mirrord.reconcile.command import Command


def test_the_progress_line_is_written_to_the_raw_stream():
    cfg = object()   # the progress stream is chosen before the config is read
    with output.redacted_streams():
        assert isinstance(sys.stderr, output.RedactingStream)
        cmd = Command.__new__(Command)
        Command.__init__(cmd, cfg, dry_run=True, delete=False, checksum=False, quiet=False)
        assert cmd.progress.stream is output.raw(sys.stderr)
        assert not isinstance(cmd.progress.stream, output.RedactingStream)
