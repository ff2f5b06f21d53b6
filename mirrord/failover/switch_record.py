"""The record of what stood where the application's configuration is flipped.

Before a failover changes the link or the flag file, what was there (the link's
exact target bytes, an earlier flag file's content, its mode and owner) is
written to `failover-appconfig.json` in state_dir, atomically and 0600, so a
failback restores it exactly. Both switches (appconfig.SymlinkSwitch,
flagfile.FlagFileSwitch) keep their record through `Switch`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from pathlib import Path

from mirrord.fsutil import atomic_write, fsync_dir

RECORD = "failover-appconfig.json"


class Switch:
    """Common part: the record of what was there before, kept in state_dir."""

    def __init__(self, state_dir: Path):
        self.record_path = Path(state_dir) / RECORD

    def load_record(self) -> dict | None:
        try:
            doc = json.loads(self.record_path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def record_for(self, key: str, value: str) -> dict | None:
        """The record when it is this mode's, for this link or flag (`key` == `value`)."""
        rec = self.load_record()
        return rec if rec and rec.get("mode") == getattr(self, "mode", None) \
            and rec.get(key) == value else None

    def save_record(self, doc: dict) -> None:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        doc = {**doc, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write(self.record_path, json.dumps(doc).encode(), mode=0o600)

    def drop_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.record_path.unlink()
            fsync_dir(str(self.record_path.parent))


def b64(data: bytes | None) -> str | None:
    """Bytes as base64 text for the JSON record; None stays None."""
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    """The bytes `b64` wrote; None stays None. binascii.Error on a damaged record."""
    return None if text is None else base64.b64decode(text)
