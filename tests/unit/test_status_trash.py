"""`mirrord status` shows each keeping target's trash: files, bytes, oldest kept change."""

from __future__ import annotations

import time

from mirrord.cli.status import collect, render
from mirrord.config import load
from mirrord.journal import Journal
from mirrord.trash.retention import Summary


def _config(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    path = tmp_path / "mirrord.ini"
    path.write_text(f"""[mirrord]
state_dir = {tmp_path / 'state'}

[source:up]
path = {src}
targets = mirror

[target:mirror]
type = local
path = {dst}
keep_deleted = 7d
""")
    return load(path)


def test_status_shows_the_trash_of_the_last_retention_run(tmp_path):
    cfg = _config(tmp_path)
    now = time.time()
    jr = Journal(cfg.mirrord.journal_path, {"up": ("mirror",)})
    try:
        jr.set_state("trash:mirror", Summary("mirror", at=now - 30, files=3, bytes=12_288,
                                             oldest=now - 3 * 3600, purged=1).to_state())
    finally:
        jr.close()
    doc = collect(cfg)
    assert doc["targets"]["mirror"]["trash"]["files"] == 3
    assert doc["targets"]["mirror"]["trash"]["bytes"] == 12_288
    text = render(doc)
    line = next(li for li in text.splitlines() if "trash:" in li)
    assert "3 files, 12288 bytes kept" in line and "oldest 3.0h ago" in line
    assert "retention error" not in line


def test_a_retention_error_is_shown_and_no_trash_line_without_a_run(tmp_path):
    cfg = _config(tmp_path)
    jr = Journal(cfg.mirrord.journal_path, {"up": ("mirror",)})
    try:
        assert "trash:" not in render(collect(cfg))
        jr.set_state("trash:mirror", Summary("mirror", at=time.time(),
                                             error="RetryableError: host down").to_state())
    finally:
        jr.close()
    assert "retention error: RetryableError: host down" in render(collect(cfg))
