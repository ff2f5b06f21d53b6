"""A failed batch is reported once per distinct error, not once per path."""

from __future__ import annotations

import logging

from mirrord.pipeline import log_retrying


def test_a_failed_batch_is_one_line(caplog):
    paths = [f"d/f{i:04d}" for i in range(5000)]
    with caplog.at_level(logging.WARNING, logger="mirrord"):
        log_retrying("host", 1, "RetryableError: rsync exit 255", paths)
    [record] = caplog.records
    text = record.getMessage()
    assert "ops=5000" in text and "target=host" in text and "attempt=1" in text
    assert '"d/f0000, d/f0001, d/f0002"' in text and "d/f0003" not in text


def test_a_single_failure_names_its_path(caplog):
    with caplog.at_level(logging.WARNING, logger="mirrord"):
        log_retrying("s3", 4, "RetryableError: slow down", ["a b/c"])
    [record] = caplog.records
    assert record.getMessage() == 'msg=retrying target=s3 path="a b/c" attempt=4 error="RetryableError: slow down"'
