"""Logging: one line per event worth knowing, key=value text or JSON; never a credential.

Every record passes through `redact`, which masks anything that looks like a
secret (AWS secret keys, password= in conninfo strings), as a last line of
defence: code should not log secrets in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_SECRET_PATTERNS = [
    # libpq's password='quoted value' or a bare value. A bare value ends at whitespace or a
    # quote: `\S+` also ate the closing quote of a key="host=... password=x" log field and left
    # the line unbalanced. A backslash-escaped quote followed by another character of the value
    # (kv()'s json.dumps of a password holding a quote) stays part of it: no tail leaks.
    (re.compile(r"""(password\s*=\s*)('[^']*'|(?:[^\s"'\\]|\\["'](?=[^\s"'\\]))+)""", re.IGNORECASE),
     r"\1***"),
    (re.compile(r"(secret_access_key\s*[=:]\s*)\S+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(aws_secret_access_key\s*[=:]\s*)\S+", re.IGNORECASE), r"\1***"),
    (re.compile(r"(Signature=|X-Amz-Signature=|Credential=)[^&\s]+"), r"\1***"),
    # user:password@ in any URL (a conninfo URI, an S3 endpoint, a check_url), up to the
    # last '@' before the host: a password may itself hold an '@'
    (re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^/\s]*@", re.IGNORECASE), r"\1***@"),
]
_extra_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask this exact value wherever it would appear in a log line."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def redact(text: str) -> str:
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    for secret in _extra_secrets:
        text = text.replace(secret, "***")
    return text


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} {record.getMessage()}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return redact(line)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, ensure_ascii=False))


def setup_logging(level: str = "info", fmt: str = "text", *, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper(), logging.INFO))
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "schedule"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def kv(**fields: object) -> str:
    """Format key=value pairs, quoting values with spaces so lines stay parseable."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in ' "=\n\t'):
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)
