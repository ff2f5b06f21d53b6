"""RootGuard.learn (mirrord/targets/rsync/root_guard.py): what the writable open's answer
teaches the root check, and the warning when the mirror host printed no device number
(a `stat` without `-c`): the identity check then passes anything, and only the open's
witness guards against a bare mount point. Before, that went unsaid."""

from __future__ import annotations

import logging

import pytest

from mirrord.targets.rsync.root_guard import ROOT_ID_MARK, RootGuard


def answer(root_id: bytes) -> bytes:
    """prepare_script's stdout: the identity line, then rsync's version line."""
    return ROOT_ID_MARK + b" " + root_id + b"\nrsync  version 3.2.7  protocol version 31\n"


@pytest.mark.parametrize("root_id", [b"2049", b"2049m"])
def test_a_device_number_is_learnt_and_nothing_is_said(root_id, caplog):
    g = RootGuard(b"/srv/mirror")
    with caplog.at_level(logging.WARNING, logger="mirrord.targets"):
        g.learn(answer(root_id), target="host")
    assert g.root_id == root_id and not caplog.records
    assert root_id in g.shell()


@pytest.mark.parametrize("root_id", [b"", b"m"])
def test_no_device_number_is_warned_once_per_open_naming_target_and_root(root_id, caplog):
    g = RootGuard(b"/srv/mirror")
    with caplog.at_level(logging.WARNING, logger="mirrord.targets"):
        g.learn(answer(root_id), target="host")
    (rec,) = caplog.records
    text = rec.getMessage()
    assert "no device number" in text and "target=host" in text and "/srv/mirror" in text
    assert g.shell()   # the witness check still runs
