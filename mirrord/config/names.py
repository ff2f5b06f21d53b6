"""Names the config gives that mirrord prints: `[mirrord] hostname` (written into every
heartbeat, status and failover.log) and the NAME of each `[source:NAME]` and
`[target:NAME]` (in every log line, status, metric label and message about them).

A control character in one (a stray paste: `hostname = a\\x01b`) was accepted and then
printed as is, or dropped by the output's redaction, so what the operator read was not
the name configured; an empty `hostname =` silently became this machine's name, where
the README says an empty value is an error when the default is a value.
"""

from __future__ import annotations

import socket

from mirrord.config.values import _Reader


def unprintable(text: str) -> str | None:
    """The first character of `text` that cannot be printed as itself (a C0 or C1
    control character, DEL, a line or paragraph separator: str.isprintable), shown as a
    code point (`0x01`); None when there is none."""
    for c in text:
        if not c.isprintable():
            return f"{ord(c):#04x}"
    return None


def read_hostname(r: _Reader) -> str:
    """[mirrord] hostname -> the name (default: this machine's, socket.gethostname()).
    A problem when written empty, or holding a character unprintable() finds."""
    s = "mirrord"
    text = r.raw(s, "hostname")
    if text is None:
        return socket.gethostname()
    if text == "":
        r.empty_refused(s, "hostname")
        return socket.gethostname()
    bad = unprintable(text)
    if bad:
        r.problem(s, "hostname", f"holds a control character ({bad}): {text!r}; write the "
                  "name as it should be shown")
    return text


def check_section_name(r: _Reader, section: str, name: str) -> None:
    """A problem for a [source:NAME] or [target:NAME] whose NAME holds a character
    unprintable() finds or has a space at either end (`targets` lists are stripped: a
    `[target: t]` could never be named in one)."""
    bad = unprintable(name)
    if bad:
        r.problem(section, "", f"the name {name!r} holds a control character ({bad}); "
                  "names are printed in logs, status and metrics")
    elif name != name.strip():
        r.problem(section, "", f"the name {name!r} has a space at an end; write "
                  f"[{section.partition(':')[0]}:{name.strip()}]")


# Other words a target's section gives that are printed (check-config, status, messages)
# and passed on as they are (ssh's -l, an S3 request's region and x-amz-storage-class):
# key -> whether the value may be shown in the message (a user name is not: `bob:pw`)
_PRINTED_WORDS = {"user": False, "region": True, "storage_class": True}


def check_printed_words(r: _Reader) -> None:
    """A problem for each [target:NAME] user, region or storage_class holding a
    character unprintable() finds: never a name meant, and each failed only when used
    (ssh's or botocore's own error, not naming the key)."""
    for section in r.parser.sections():
        if not section.startswith("target:"):
            continue
        for key, shown in _PRINTED_WORDS.items():
            text = r.raw(section, key) or ""
            bad = unprintable(text)
            if bad:
                value = f": {text!r}" if shown else " (the value is not shown)"
                r.problem(section, key, f"holds a control character ({bad}){value}")
