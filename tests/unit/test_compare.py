"""The compare rules catch-up and reconcile share: which Change repairs which difference."""

from __future__ import annotations

import pytest

from mirrord.compare import NEEDS_STAT, against_listing, against_shipped, against_stat, etag
from mirrord.targets.model import Entry

NS = 1_700_000_000_123_456_789
SRC = Entry("f", 5, NS / 1e9, mtime_ns=NS, mode=0o644)
DIR = Entry("d", 0, NS / 1e9, is_dir=True, mtime_ns=NS, mode=0o755)


@pytest.mark.parametrize("row, keeps, want", [
    (None, True, "put"),
    ((b"f", 5, NS, None, 0o644), True, None),
    ((b"f", 6, NS, None, 0o644), True, "put"),
    ((b"f", 5, NS + 1, None, 0o644), True, "put"),
    ((b"f", 5, NS, None, 0o600), True, "attr"),
    ((b"f", 5, NS, None, 0o600), False, None),
    ((b"f", 5, NS, None, 0o600), None, "attr"),     # recorded: the target keeps modes
    ((b"f", 5, NS, None, None), True, "attr"),      # schema 1 row: sent once
    ((b"f", 5, NS, None, None), None, None),
])
def test_against_shipped_for_a_file(row, keeps, want):
    assert against_shipped(SRC, row, keeps_mode=keeps) == want


def test_against_shipped_for_a_directory_ignores_mtime_but_not_mode():
    assert against_shipped(DIR, None, keeps_mode=True) == "mkdir"
    assert against_shipped(DIR, (b"d/", 0, 1, None, 0o755), keeps_mode=True) is None
    assert against_shipped(DIR, (b"d/", 0, NS, None, 0o700), keeps_mode=True) == "mkdir"


def test_against_a_listing_with_mtime_and_mode():
    same = Entry("f", 5, NS / 1e9, mode=0o644)
    kw = dict(list_mtime=True, keeps_mode=True, tolerance=2e-6)
    assert against_listing(SRC, same, None, **kw) is None
    assert against_listing(SRC, Entry("f", 5, NS / 1e9, mode=0o600), None, **kw) == "mode"
    assert against_listing(SRC, Entry("f", 5, NS / 1e9 + 1, mode=0o600), None, **kw) == "mtime"
    assert against_listing(SRC, Entry("f", 5, NS / 1e9, mode=None), None, **kw) is None
    assert against_listing(SRC, Entry("f", 5, NS / 1e9, mode=0o600), None,
                           list_mtime=True, keeps_mode=False, tolerance=2e-6) is None


def test_against_an_s3_listing_uses_the_shipped_row_or_asks_for_a_head():
    listed = Entry("f", 5, 1.0, token='"abc"')
    kw = dict(list_mtime=False, keeps_mode=True, tolerance=2e-6)
    assert against_listing(SRC, listed, (b"f", 5, NS, "abc", 0o644), **kw) is None
    assert against_listing(SRC, listed, (b"f", 5, NS, '"abc"', 0o600), **kw) == "mode"
    assert against_listing(SRC, listed, (b"f", 5, NS, '"abc"', None), **kw) == "mode"
    assert against_listing(SRC, listed, (b"f", 5, NS, '"zzz"', 0o644), **kw) == "changed on the target"
    assert against_listing(SRC, listed, (b"f", 5, NS - 1, '"abc"', 0o644), **kw) == "changed at the source"
    assert against_listing(SRC, listed, None, **kw) == NEEDS_STAT


def test_against_a_head():
    kw = dict(keeps_mode=True, tolerance=2e-6)
    assert against_stat(SRC, None, **kw) == "not on target"
    assert against_stat(SRC, Entry("f", 5, 0, mtime_ns=NS, mode=0o644), **kw) is None
    assert against_stat(SRC, Entry("f", 5, 0, mtime_ns=NS, mode=None), **kw) == "mode"
    assert against_stat(SRC, Entry("f", 5, 0, mtime_ns=NS - 10**6, mode=0o644), **kw) == "mtime"
    assert against_stat(SRC, Entry("f", 5, NS / 1e9 - 5), **kw) == "older on the target"
    assert against_stat(SRC, Entry("f", 5, NS / 1e9 + 5), **kw) is None   # not ours, newer


def test_etags_compare_without_quotes():
    assert etag('"abc"') == etag("abc") == "abc"
