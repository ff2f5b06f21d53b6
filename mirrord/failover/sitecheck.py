"""The last step of a switch: fetch [failover] check_url and match check_pattern in the body.

It proves the site answers in the mode just switched to, e.g. MediaWiki's
`api.php?action=query&meta=siteinfo&format=json` reports "readonly" while
$wgReadOnly is set. Fetched with urllib (the standard library) and a timeout
([failover] check_timeout, default 10 s); any HTTP status >= 400 fails, and
so does an answer that is not HTTP at all (a check_url on the wrong port:
memcached answers `ERROR`, http.client raises BadStatusLine, which is no
OSError and once escaped the failover mid-way, after the flip).
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.error
import urllib.request

from mirrord.config.addresses import shown_url
from mirrord.logsetup import redact

BODY_LIMIT = 1 << 20      # read at most 1 MiB: the pattern is meant for a small API answer
SHOWN = 300               # characters of the body quoted in a failure message


def check(url: str, pattern: str, *, timeout: float) -> tuple[bool, str]:
    """(ok, what was fetched and seen) within `timeout` seconds in all; never raises: an
    unreachable site, an HTTP error, an answer that is not HTTP (http.client.HTTPException),
    a URL urllib cannot use (http.client.InvalidURL, ValueError) or no whole answer within
    `timeout` is (False, why). urlopen's own timeout bounds each socket operation, not the
    fetch: a server sending one byte a second held failover for good, after the flip and
    before post_failover, with the lock held (a breaker); the fetch now runs on a daemon
    thread that is given up at the deadline. A user:password@ in `url` is never shown
    (check-config refuses it; this is the last line of defence)."""
    answer: list[tuple[bool, str]] = []

    def fetch() -> None:
        try:
            answer.append(_fetch(url, pattern, timeout))
        except Exception as exc:  # noqa: BLE001 - whatever it was, the answer says it
            answer.append((False, redact(f"GET {shown_url(url)}: {type(exc).__name__}: {exc}")))
    worker = threading.Thread(target=fetch, name="check_url", daemon=True)
    worker.start()
    worker.join(timeout)
    if answer:
        return answer[0]
    return False, redact(f"GET {shown_url(url)}: no whole answer within check_timeout "
                         f"{timeout:g}s")


def _fetch(url: str, pattern: str, timeout: float) -> tuple[bool, str]:
    shown = shown_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status = resp.status
            raw = resp.read(BODY_LIMIT)
            try:   # an unknown charset (`utf8mb4` from a PHP site) is read as UTF-8: it raised
                body = raw.decode(resp.headers.get_content_charset() or "utf-8", errors="replace")
            except LookupError:   # LookupError on the thread, and the check said "no answer"
                body = raw.decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return False, redact(f"GET {shown}: HTTP {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, redact(f"GET {shown}: {reason}")
    except http.client.HTTPException as exc:
        return False, redact(f"GET {shown}: not an HTTP answer ({type(exc).__name__}: {exc})")
    seen = " ".join(body[:SHOWN].split())
    if pattern and not re.search(pattern, body):
        return False, redact(f"GET {shown}: HTTP {status}, body does not match {pattern!r}; "
                             f"body starts: {seen!r}")
    matched = f", body matches {pattern!r}" if pattern else ""
    return True, redact(f"GET {shown}: HTTP {status}{matched}")
