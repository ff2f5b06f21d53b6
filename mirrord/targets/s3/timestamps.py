"""The timestamp parser the S3 client's responses are read with: S3's ISO 8601 form through
the standard library, anything else through botocore's own parser.

Why: botocore parses every timestamp of a response with dateutil's general parser. A
ListObjectsV2 page holds one LastModified per key, and a profile of `mirrord reconcile
--dry-run` over 100,000 objects on SeaweedFS spent 39% of the process's CPU there
(2026-12-03, issue 15). botocore lets a session replace the parser
(ResponseParserFactory.set_parser_defaults(timestamp_parser=...)); AWS's own CLI does the
same for its output (awscli/customizations/scalarparse.py).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from botocore.utils import parse_timestamp as botocore_parse_timestamp

# S3's XML timestamps (ListObjectsV2's LastModified: 2026-12-03T20:47:23.123Z), with a
# zone always: a string without one goes to botocore, which decides what it means. ASCII
# digits only (re.ASCII): other scripts' digits are botocore's to read or refuse.
_ISO_8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.ASCII)


def parse_timestamp(value: Any) -> datetime.datetime:
    """A timezone-aware datetime for `value` as a response carries it: an ISO 8601 string
    with seconds and a zone (any number of fraction digits, cut to microseconds, as
    botocore's parser does) through datetime.fromisoformat; anything else (an RFC 1123
    header such as HeadObject's Last-Modified, epoch seconds) through
    botocore.utils.parse_timestamp, which raises ValueError for what it cannot read."""
    if isinstance(value, str) and _ISO_8601.fullmatch(value):
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:   # 2026-02-30T...: botocore's own error
            pass
    return botocore_parse_timestamp(value)


def install(botocore_session: Any) -> None:
    """Make `botocore_session`'s clients read response timestamps with parse_timestamp.
    Only clients created after the call; other sessions are not touched."""
    factory = botocore_session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
