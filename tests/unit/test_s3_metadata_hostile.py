"""An S3 object's metadata written by someone else (another tool, a hostile user with
bucket access) is read without raising: an `mtime` too large for a float or a `mode` past
a C long falls back to the server's LastModified and no mode (breaker J: 400 digits of
`mtime` raised OverflowError out of `mirrord reconcile`). A year-2300 mtime, which mirrord
itself writes for a file dated so, still reads exactly."""

from __future__ import annotations

import datetime

import pytest

from mirrord.targets.s3.keys import head_entry

LAST = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def head(**meta) -> dict:
    return {"ContentLength": 4, "LastModified": LAST, "ETag": '"e"', "Metadata": meta}


@pytest.mark.parametrize("mtime", ["1" + "0" * 400, "nan", "1e999", "-" + "9" * 400, "x"])
def test_an_mtime_no_float_holds_falls_back_to_last_modified(mtime):
    e = head_entry("a.jpg", head(mtime=mtime, mode="644"))
    assert (e.mtime_ns, e.mtime, e.mode) == (0, LAST.timestamp(), 0o644)


@pytest.mark.parametrize("mode", ["7" * 40, "9", "-1x"])
def test_a_mode_past_a_c_long_or_not_octal_is_no_mode(mode):
    assert head_entry("a.jpg", head(mtime="1.5", mode=mode)).mode is None


def test_a_year_2300_mtime_reads_exactly():
    e = head_entry("a.jpg", head(mtime="10413792000.000000005"))
    assert e.mtime_ns == 10_413_792_000 * 10**9 + 5
