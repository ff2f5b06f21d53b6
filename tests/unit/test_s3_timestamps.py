"""mirrord/targets/s3/timestamps.py: the fast path reads S3's ISO 8601 timestamps exactly as
botocore's own parser does, and everything else is botocore's parser's answer."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.utils import parse_timestamp as botocore_parse

from mirrord.targets.s3.timestamps import install, parse_timestamp

SAME_AS_BOTOCORE = [
    "2026-12-03T20:47:23.123Z",          # ListObjectsV2's LastModified on AWS
    "2026-12-03T20:47:23Z",
    "2026-12-03T20:47:23.000Z",
    "2026-12-03T20:47:23.5Z",
    "2026-12-03T20:47:23.123456Z",
    "2026-12-03T20:47:23.123456789Z",    # more digits than a datetime holds: cut, not rounded
    "2026-12-03T20:47:23.999999999Z",
    "2026-12-03T20:47:23+02:00",
    "2026-12-03T20:47:23.25-07:30",
    "1970-01-01T00:00:00Z",
    "2026-12-03T20:47:23",               # no zone: botocore decides (not the fast path)
    "Wed, 12 Oct 2009 17:50:00 GMT",     # RFC 1123: HeadObject's Last-Modified header
    "\u0662\u0660\u0662\u0666-12-03T20:47:23Z",   # Arabic-Indic digits: botocore's to read
    "1796330225",
    1796330225,
    1796330225.5,
]


@pytest.mark.parametrize("value", SAME_AS_BOTOCORE)
def test_same_instant_as_botocore(value):
    ours, theirs = parse_timestamp(value), botocore_parse(value)
    assert ours == theirs
    assert ours.timestamp() == theirs.timestamp()
    assert (ours.tzinfo is None) == (theirs.tzinfo is None)
    assert ours.utcoffset() == theirs.utcoffset()


@pytest.mark.parametrize("value", ["2026-02-30T00:00:00Z", "not a time", "2026-13-01T00:00:00Z"])
def test_what_botocore_refuses_is_refused_the_same_way(value):
    with pytest.raises(Exception) as theirs:
        botocore_parse(value)
    with pytest.raises(type(theirs.value)):
        parse_timestamp(value)


def test_the_fast_path_does_not_reach_botocore(monkeypatch):
    def refuse(value):
        raise AssertionError(f"botocore's parser asked for {value!r}")
    monkeypatch.setattr("mirrord.targets.s3.timestamps.botocore_parse_timestamp", refuse)
    assert parse_timestamp("2026-12-03T20:47:23.123Z").timestamp() == 1796330843.123
    with pytest.raises(AssertionError):
        parse_timestamp("Wed, 12 Oct 2009 17:50:00 GMT")


LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>a/b.png</Key><LastModified>2026-12-03T20:47:23.123Z</LastModified>
<ETag>&quot;x&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>"""


def _parse_listing(session):
    """A ListObjectsV2 answer read as `session`'s clients read it."""
    op = session.get_service_model("s3").operation_model("ListObjectsV2")
    parser = session.get_component("response_parser_factory").create_parser("rest-xml")
    return parser.parse({"status_code": 200, "headers": {}, "body": LISTING}, op.output_shape)


def test_install_changes_only_the_session_given(monkeypatch):
    ours, other = botocore.session.get_session(), botocore.session.get_session()
    install(ours)
    # botocore's default parser, as every other session has it, replaced by a marker
    monkeypatch.setattr("botocore.parsers.DEFAULT_TIMESTAMP_PARSER", lambda value: "default")
    assert _parse_listing(other)["Contents"][0]["LastModified"] == "default"
    got = _parse_listing(ours)["Contents"][0]["LastModified"]
    assert got == botocore_parse("2026-12-03T20:47:23.123Z")
