"""Logging: one line per event worth knowing, key=value text or JSON; never a credential.

Every record passes through `redact`, which masks anything that looks like a
secret (AWS secret keys, password= in conninfo strings, a URL's userinfo, the
credential options of a command line: `-u user:pass`, `--password x`, an
Authorization header), as a last line of defence: code should not log secrets
in the first place.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shlex
import sys
import time
from typing import TextIO

# a long option whose value is a credential, by the word its name ends in (curl, wget,
# mysql, psql wrappers): --password, --http-password, --proxy-passwd, --token,
# --auth-token, --oauth2-bearer, --client-secret, --api-key, --passphrase; not --no-password
# (a flag). config.cmdline masks the word after one too.
SECRET_OPTION = (r"--(?!no-)[\w-]*?(?:password|passwd|pass|passphrase|token|secret|bearer|"
                 r"credentials?|api-?key|apikey|access-?key|secret-?key)")
# A value that is already the mask, then a comma, semicolon, space or the end: matched
# alone, so the field separator after it stays (`check-config` printed
# `secret_access_key=*** addressing_style=...`: a pattern's value ate the comma).
_MASKED = r"\*\*\*(?=[,;]|\s|$)"

_SECRET_PATTERNS = [
    # libpq's password='quoted value' or a bare value. A bare value ends at whitespace or a
    # quote: `\S+` also ate the closing quote of a key="host=... password=x" log field and left
    # the line unbalanced. A backslash-escaped quote followed by another character of the value
    # (kv()'s json.dumps of a password holding a quote) stays part of it: no tail leaks.
    (re.compile(rf"""(password\s*=\s*)({_MASKED}|'[^']*'|(?:[^\s"'\\]|\\["'](?=[^\s"'\\]))+)""",
                re.IGNORECASE),
     r"\1***"),
    # secret_access_key = X, or `: X` (an INI line with configparser's other delimiter,
    # YAML, an `env` dump), aws_ prefixed too. Not where mirrord's own message NAMES the key:
    # a config problem's location, `[target:x] secret_access_key: access_key_id and ...`,
    # once came out `secret_access_key: *** and ...` (errors.ConfigProblem's format)
    (re.compile(r"((?<![\])] )(?<![\])] aws_)secret_access_key\s*[=:]\s*)"
                rf"(?:{_MASKED}|\S+)", re.IGNORECASE),
     r"\1***"),
    (re.compile(r"(Signature=|X-Amz-Signature=|Credential=)[^&\s]+"), r"\1***"),
    # the whole userinfo of any URL (a conninfo URI, an S3 endpoint, a check_url, a URL in a
    # hook's command line), up to the last '@' before the host: a password may itself hold
    # an '@', and a userinfo without ':' is a token (https://TOKEN@host/). The user name
    # goes too: one rule for every URL shown (config.addresses.shown_url is this rule)
    (_USERINFO := re.compile(r"([a-z][a-z0-9+.-]*://)[^/\s]*@", re.IGNORECASE), r"\1***@"),
    # a command line's credential options and their separate values (SECRET_OPTION: curl,
    # wget, mysql, psql wrappers): `--password x`, `--token 'x y'`, `--oauth2-bearer x`,
    # `--http-password x` (the `=` forms are caught above or below)
    # A lone `|`, `;` or `&` after the option is no value: a separator (a shell's, or the
    # " | " that joins a command's output lines: `--password` ending one line is no password)
    (re.compile(rf"""((?<![\w-]){SECRET_OPTION}(?:\s+|=))(?![|;&](?:\s|$))"""
                r"""('[^']*'|"[^"]*"|[^\s'"]+)""", re.IGNORECASE), r"\1***"),
    # curl's -u/--user and -U/--proxy-user user:password (the user is kept)
    (re.compile(r"""((?<![\w-])(?:-u|-U|--user|--proxy-user)(?:\s+|=)?)"""
                r"""(?:'([^':]*):[^']*'|"([^":]*):[^"]*"|([^\s:'"]*):[^\s'"]+)"""),
     lambda m: f"{m.group(1)}{next(g for g in m.groups()[1:] if g is not None)}:***"),
    # a program's own password flag (config.cmdline._PROGRAM_SECRET_FLAGS): sshpass(1) -p x
    # and redis-cli -a x (a separate or attached value), mysql/mariadb -px (attached only:
    # `mysql -p db` names a database); up to the end of that command (| ; &)
    (re.compile(r"""((?<![\w-])(?:sshpass\b[^|;&\n]*?\s-p|redis-cli\b[^|;&\n]*?\s-a)\s*)"""
                r"""('[^']*'|"[^"]*"|[^\s'"]+)"""), r"\1***"),
    (re.compile(r"""((?<![\w-])(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump|"""
                r"""mariadb-admin)\b[^|;&\n]*?\s-p)([^\s'"]+)"""), r"\1***"),
    # an HTTP Authorization header (-H 'Authorization: Bearer x'): the credentials
    (re.compile(r"""(authorization:\s*(?:(?:basic|bearer|token|digest)\s+)?)[^\s'"]+""",
                re.IGNORECASE), r"\1***"),
    # any other header whose name says it carries a secret (curl -H 'X-Api-Key: x',
    # 'PRIVATE-TOKEN: x', 'X-Auth-Token: x', 'Cookie: x'): a hyphenated name holding a
    # credential word, so a config key (`secret_access_key: ...`, underscores) is no header
    (re.compile(r"""((?<![\w-])(?:(?:set-)?cookie|(?=[a-z0-9]*-)[a-z0-9-]*?"""
                r"""(?:key|token|secret|pass|auth|session|signature|credential)[a-z0-9-]*)"""
                r""":[ \t]*(?:(?:basic|bearer|token|digest)\s+)?)[^\s'"]+""",
                re.IGNORECASE), r"\1***"),
    # openssl's password arguments: -passin/-passout/-pass pass:x (env:, file:, fd: name
    # where the password is, and stay)
    (re.compile(r"""((?<![\w./:-])(['"])?pass:)((?(2)[^'"]*|[^\s'"]+))"""), r"\1***"),
    # NAME=value where the name ends in a credential word: PGPASSWORD=, MYSQL_PWD=,
    # AWS_SECRET_ACCESS_KEY=, GITHUB_TOKEN=, --api-key= (an environment assignment or option;
    # `_pwd`, not `pwd`: PWD= and OLDPWD= in an `env` dump are directories)
    (re.compile(r"""((?<![\w-])[\w-]*(?:[_-]pwd|pass|passwd|secret|token|api[_-]?key|"""
                r"""access[_-]?key|secret[_-]?key|credentials?)=)"""
                rf"""({_MASKED}|'[^']*'|"[^"]*"|[^\s'"&]+)""",
                re.IGNORECASE), r"\1***"),
    # an environment variable (upper case) whose name holds a credential word anywhere:
    # SSHPASS=, PGPASSWORD=, REDISCLI_AUTH=, VAULT_TOKEN_X=, AWS_SECRET_ACCESS_KEY=, API_KEY_2=
    # (case-sensitive: `StrictHostKeyChecking=no` is an ssh option, not a key)
    (re.compile(r"""((?<![\w-])[A-Z0-9_]*(?:PASS|TOKEN|SECRET|KEY|AUTH(?!OR)|CREDENTIAL)"""
                rf"""[A-Z0-9_]*=)({_MASKED}|'[^']*'|"[^"]*"|[^\s'"&]+)"""), r"\1***"),
]
# Below this length a registered secret is masked only where it stands as a whole
# credential field (register_secret): "abc" masked everywhere would mangle ordinary output
# (every "a" of every line, for a password "a").
MIN_ANYWHERE = 4
_extra_secrets: set[str] = set()
_short_secrets: dict[str, re.Pattern[str]] = {}


def mask_userinfo(text: str) -> str:
    """`text` with the userinfo of every URL in it masked whole (`scheme://***@host`): the
    one rule for URLs in messages (redact applies it too)."""
    return _USERINFO.sub(r"\1***@", text)


def register_secret(value: str) -> None:
    """Mask `value` (a password or key mirrord read) in everything passed through redact:
    log lines, messages, failover.log, shown command lines.

    A value of MIN_ANYWHERE characters or more is masked wherever it appears. A shorter
    one is masked only where it stands as a whole credential field: the whole text, a
    quoted string ('abc', "abc"), or a userinfo's password (`:abc@`); the value after a
    credential key or option (`password=abc`, `PGPASSWORD=abc`, `--password abc`,
    `-u user:abc`, a URL's userinfo) is masked by redact's patterns whatever it holds,
    registered or not. A shorter secret inside other text ("abc" in "abcdef") stays: there
    it cannot be told from ordinary text."""
    if not value:
        return
    forms = written_forms(value)
    if len(value) >= MIN_ANYWHERE:
        _extra_secrets.update(forms)
    else:
        v = "(?:" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + ")"
        _short_secrets[value] = re.compile(rf"""(['"]){v}\1|(?<=:){v}(?=@)|\A{v}\Z""")


def written_forms(value: str) -> set[str]:
    """`value` (str) as mirrord's own output may write it: as it is; inside a JSON string,
    once (kv()'s quoting of a field with a space or quote, a traceback's `exc=`) or twice
    (a kv() field inside the JSON log's `msg`), with non-ASCII kept or escaped; in a Python
    repr (an `{exc!r}`), also of its UTF-8 bytes; shell-quoted (shlex.quote, a command line
    shown); and each of those reprs and quotings JSON-quoted in turn (a traceback's repr
    in `exc=` or the JSON log: helper-146). A value holding
    a `\\` or a `"` came out of the text log whole: kv() had written it as `\\\\`, and a
    mask looking for the value as it is found nothing there (a review, helper-144)."""
    base = {value, repr(value)[1:-1], repr(value.encode("utf-8", "surrogateescape"))[2:-1],
            shlex.quote(value)}
    forms = set(base)
    for form in base:   # a repr in a traceback is JSON-quoted again (`exc=`, the JSON log)
        for ascii_only in (False, True):
            once = json.dumps(form, ensure_ascii=ascii_only)[1:-1]
            forms.update((once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]))
    return {f for f in forms if f}


def _mask_short(found: re.Match[str]) -> str:
    quote = found.group(1) or ""
    return f"{quote}***{quote}"


def redact(text: str) -> str:
    """`text` with every credential-shaped part masked as '***' (see the patterns above and
    register_secret). The registered values go first: a pattern masks a value only up to
    a space or a quote in it (`--password 'a b'`), and the value was then no longer whole
    for its own mask to find, which left its tail shown (a review, helper-144). Only where
    a value stands as a word of its own, though: a value inside a longer word (a password
    `word`, in `password=x`) masked first left `pass***=x`, which no pattern matches
    (helper-146); those are masked after the patterns, as before."""
    text = _mask_words(text)
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return mask_secrets(text)


def _mask_words(text: str) -> str:
    """`text` with each registered value (MIN_ANYWHERE characters or more) masked where
    neither the character before it nor the one after it is a word character."""
    if not _extra_secrets:
        return text
    return _words_pattern(frozenset(_extra_secrets)).sub("***", text)


@functools.lru_cache(maxsize=8)
def _words_pattern(secrets: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


# a control character a terminal acts on: C0 but tab and newline (which output keeps as
# they are), DEL and C1 (0x9b is CSI to some terminals)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# what a terminal consumes without showing: an ESC sequence (CSI, OSC) or a lone control
_CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|"
                               r"\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """`text` (str) with every control character but tab and newline written as `\\xNN`
    (ESC as `\\x1b`, CR as `\\x0d`): text from outside mirrord (a hook's output, a
    heartbeat's reason, a server's message) can no longer clear, recolour or overwrite
    the operator's terminal. Raises nothing."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def redact_split(text: str) -> str:
    """redact(`text`), also masking a credential split by control characters
    (`pw-Zq81-\\e[0msecret` or `pw-Zq81-\\rsecret`, whole on a terminal while the raw text
    matched no pattern): when the text with its control sequences removed masks more, that
    text is returned masked instead. Control characters are left as they are. Raises nothing."""
    masked = redact(text)
    plain = _CONTROL_SEQUENCE.sub("", text)
    if plain != text:
        unsplit = redact(plain)
        if unsplit.count("***") > masked.count("***"):
            return unsplit
    return masked


def shown_line(text: str) -> str:
    """`text` (str, a line or lines) for a terminal: redacted (redact_split) and its control
    characters escaped (escape_controls). Raises nothing."""
    return escape_controls(redact_split(text))


class Verbatim(str):
    """A string that is user data, a file's path: shown as it is, with only the registered
    secret values masked (mask_secrets), never rewritten by redact's patterns (a breaker's
    `password=1.jpg` came out of `trash --json` as `password=***`): mirrord.cli.output."""


def redact_doc(value: object) -> object:
    """A document about to be serialised as JSON (status --json, failover.log, `mirrord
    health`'s /ready) -> the same document with every string in it, keys too, passed
    through redact (a Verbatim string: mask_secrets only), and any other object that is not
    a number, bool or None shown as its redacted str() (what json.dumps' default=str would
    have written unredacted). Strings are redacted one by one, never the serialised text:
    a pattern run across two strings could eat a closing quote and break the JSON."""
    if isinstance(value, Verbatim):
        return mask_secrets(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_doc(k) if isinstance(k, str) else k: redact_doc(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_doc(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value))


def mask_secrets(text: str) -> str:
    """`text` with only the registered secret values masked (register_secret), none of
    redact's patterns: for user data such as a file's path, which a pattern would rewrite
    (a file named `password=1.jpg` listed as `password=***`, which undelete then cannot
    find), while a credential mirrord read is still never shown."""
    for secret in sorted(_extra_secrets, key=len, reverse=True):   # a form holding another: whole
        text = text.replace(secret, "***")
    for short in _short_secrets.values():
        text = short.sub(_mask_short, text)
    return text


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{ts}.{int(record.msecs):03d}Z level={record.levelname.lower()} {record.getMessage()}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return shown_line(line)


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


def setup_logging(level: str = "info", fmt: str = "text", *, verbose: bool = False,
                  stream: TextIO | None = None) -> None:
    """Log records at `level` and above (debug with `verbose`) as `fmt` ("text" or "json")
    lines to `stream` (default sys.stderr), each redacted by its formatter."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
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


def hook_name(hook: object) -> str:
    """A daemon hook's name for log lines and the `step` label of
    mirrord_cycle_errors_total: a function's or bound method's qualified name, an
    instance's class name. Never its repr: `<... object at 0x7f...>` changed at every
    start, so each restart made new series (a trial's finding)."""
    return getattr(hook, "__qualname__", None) or type(hook).__qualname__
