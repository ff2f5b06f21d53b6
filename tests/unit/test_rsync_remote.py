"""The records the rsync target exchanges with its remote scripts (no host needed):
exact nanoseconds and octal modes both ways, and answers that are not ours ignored."""

from __future__ import annotations

import pytest

from mirrord.errors import PermanentError, RetryableError
from mirrord.targets.rsync.remote import (MetaDone, classify_stderr, meta_record, parse_answers,
                                          parse_record)


def test_meta_record_carries_octal_mode_and_exact_nanoseconds():
    rec = meta_record(7, b"a b/\xff-e", 0o640, 1_600_000_000_000_000_001)
    assert rec == b"7 640 1600000000.000000001 ./a b/\xff-e"
    assert meta_record(0, b"x", None, 5).startswith(b"0 - 0.000000005 ")


def test_answers_by_index_and_stray_output_ignored():
    out = (b"0 f 1600000000.1234567890 12 600\0" b"1 A\0" b"2 E\0" b"garbage\0" b"3 f x 1 644\0")
    assert parse_answers(out) == {0: MetaDone(12, 1_600_000_000_123_456_789, 0o600),
                                  1: "A", 2: "E"}


def test_listing_record_with_mode_and_a_name_holding_spaces():
    assert parse_record(b"f 1600000000.5000000000 3 4755 ./x y z") == (
        b"f", b"x y z", 3, 1_600_000_000_500_000_000, 0o4755)
    assert parse_record(b"d 1.0 0 750 ./d e/")[1:] == (b"d e", 0, 1_000_000_000, 0o750)


@pytest.mark.parametrize("stderr,kind", [
    (b"chmod: changing permissions of './f': Operation not permitted", PermanentError),
    (b"touch: cannot touch './f': No space left on device", RetryableError),
    (b"Connection reset by peer", RetryableError),
])
def test_failures_are_classified(stderr, kind):
    assert type(classify_stderr(stderr, "host: set_meta")) is kind
