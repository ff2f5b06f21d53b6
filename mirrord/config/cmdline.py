"""Command lines in the config (hooks, reload_command, ssh_command): how they are shown
(their credentials masked) and which secret values they hold (masked by value in their output).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil

from mirrord.logsetup import SECRET_OPTION, redact, redact_split, register_secret

# options whose value is the next word and a credential (curl, wget, mysql, psql wrappers):
# logsetup.SECRET_OPTION, the rule redact applies to any text
_SECRET_OPTION = re.compile(SECRET_OPTION, re.IGNORECASE)
# what comes before a credential value that is the rest of its word: NAME=, a header's
# `Name: ` (and a scheme word: `Authorization: Bearer `), openssl's `pass:`
_LEAD = re.compile(r"[^\s=:]+(?:=|:[ \t]*(?:\w+[ \t]+)?)")
_USER_OPTIONS = {"-u", "-U", "--user", "--proxy-user"}    # curl: user:password
# Short options that take a password in one program and mean something else elsewhere
# (`ssh -p 2222` is a port): by program, "word" when the value may be the next word or
# attached (sshpass(1) -p, redis-cli -a), "attached" when only -pPASS is one (mysql(1):
# `-p db` prompts, and db is a database). The program is the last word naming one of
# _PROGRAMS (so `sshpass -p x ssh -p 2222 h` masks x and keeps the port).
_PROGRAM_SECRET_FLAGS = {
    "sshpass": {"-p": "word"}, "redis-cli": {"-a": "word"},
    **{name: {"-p": "attached"} for name in ("mysql", "mysqldump", "mysqladmin", "mariadb",
                                             "mariadb-dump", "mariadb-admin")}}
_PROGRAMS = set(_PROGRAM_SECRET_FLAGS) | {"ssh", "scp", "rsync", "sudo", "env", "sh", "bash"}


def shown_command(text: str) -> str:
    """A command line (a hook, reload_command, ssh_command) as it may be shown in a plan,
    log line, check-config's output or failover.log -> the text with every credential
    masked '***'; the text as written when it holds none.

    The rule, word by word (split like argv, as it runs): the word after a credential
    option (logsetup.SECRET_OPTION: `--password x`, `--token x`, `--http-password x`,
    `--oauth2-bearer x`); the password of `-u/--user/-U user:password`
    (also `-uuser:password`); a program's own password flag (`sshpass -p x`, `redis-cli
    -a x`, `mysql -px`: _PROGRAM_SECRET_FLAGS); then everything redact() masks in any text
    (NAME=value whose name ends in a credential word such as MYSQL_PWD=, --api-key=, or
    an upper-case NAME holding one anywhere such as SSHPASS=, PGPASSWORD=; a URL's
    userinfo; password= in a conninfo; a header whose name holds a credential word,
    `Authorization:`, `X-Api-Key:`, `PRIVATE-TOKEN:`; openssl's `pass:x`; registered
    secrets), a value that starts its word masked to the word's end (_whole_value).
    A command that cannot be split is masked by redact() alone."""
    try:
        argv = shlex.split(text)
    except ValueError:
        return redact(text)
    shown = _shown_words(argv)
    return text if shown == argv else shlex.join(shown)


def command_secrets(text: str) -> list[str]:
    """The secret values in the command line `text` (a hook, reload_command, ssh_command):
    each part shown_command masks, as written (`--password x` -> x, `DB_PASSWORD=x` -> x,
    `-u user:x` -> x, a URL's userinfo `user:x` -> `user:x` and x). [] when none.

    What the command prints may hold them (`echo $DB_PASSWORD`, a program echoing its
    arguments): register them (logsetup.register_secret) and redact masks them by value
    in its output too. A command that cannot be split yields what redact masks in it."""
    try:
        argv = shlex.split(text)
    except ValueError:
        argv = [text]
        shown = [redact(text)]
    else:
        shown = _shown_words(argv)
    found: list[str] = []
    for word, masked in zip(argv, shown):
        if word == masked or "***" not in masked:
            continue
        pieces = masked.split("***")
        pattern = "(.+?)".join(re.escape(p) for p in pieces)
        match = re.fullmatch(pattern, word, re.DOTALL)
        if match is None:
            continue
        for value in match.groups():
            for part in (value, value.partition(":")[2]):   # userinfo user:pw: pw alone too
                part = part.strip("'\"")
                if part and part != "***" and part not in found:
                    found.append(part)
    return found


def _shown_words(argv: list[str]) -> list[str]:
    """shown_command's rule applied to the words of `argv`: the words with credentials masked."""
    shown: list[str] = []
    before, program = "", ""
    for word in argv:
        flags = _PROGRAM_SECRET_FLAGS.get(program, {})
        attached = next((f for f in flags if word.startswith(f) and len(word) > len(f)), None)
        if _SECRET_OPTION.fullmatch(before) or flags.get(before) == "word":
            word = "***"
        elif attached is not None:
            word = attached + "***"                    # sshpass -pPASS, mysql -pPASS
        elif ":" in word and (before in _USER_OPTIONS or word.startswith("-u")):
            word = word.partition(":")[0] + ":***"     # -u user:pw, --user user:pw, -uuser:pw
        shown.append(_whole_value(redact(word)))
        before = argv[len(shown) - 1]
        if word == before and os.path.basename(word) in _PROGRAMS:
            program = os.path.basename(word)
    return shown


def _whole_value(masked: str) -> str:
    """One argv word as redact masked it -> the same, with a credential that starts the word
    after its lead (`NAME=`, `X-Api-Key: `, `pass:`) masked to the word's end: a quoted value
    holding a space (`env PGPASSWORD='a b'`, `-H 'X-Api-Key: a b'`) is one word, where
    redact's patterns, made for free text, stop at the space (`PGPASSWORD=*** b`). Not
    a conninfo's `password=`: there libpq itself ends an unquoted value at the space
    (`psql 'password=x dbname=wiki'`)."""
    lead, star, rest = masked.partition("***")
    if star and rest[:1].isspace() and _LEAD.fullmatch(lead) and lead.lower() != "password=":
        return lead + "***"
    return masked


def register_command_secrets(text: str) -> None:
    """Register every value command_secrets finds in `text` with the log redaction
    (logsetup.register_secret), so its output is masked by value wherever it is shown."""
    for value in command_secrets(text):
        register_secret(value)


def shown_output(output: str, command_line: str) -> str:
    """What the command `command_line` printed (`output`, many lines) as one line to show or
    store: its non-blank lines, each redacted on its own, joined with " | ". The secret values
    of the command line itself are registered first (register_command_secrets), so a
    command that prints its own password (`echo $DB_PASSWORD`) shows '***'.

    Each line is redacted before the join: redacting the joined text took the separator
    for the value of a `--password` that ended a line and left the password after it.
    Lines end at a newline only (not splitlines' CR, FS, ...: `pw-Zq81-\\rsecret` was two
    lines, each redacted clean, joined as `pw-Zq81- | secret`); a credential split by control
    characters is masked (logsetup.redact_split), which are left for the printer to escape."""
    register_command_secrets(command_line)
    lines = output.replace("\r\n", "\n").split("\n")
    return " | ".join(redact_split(line) for line in lines if line.strip())


def program_missing(command_line: str, default: str = "", *, executable: bool = True) -> str | None:
    """Why the program of `command_line` (its first shlex word; `default` when the line is
    empty) cannot be run on this host, None when it can: "is not found on PATH" for a bare
    name; for a path "does not exist", or "is not an executable file" (shutil.which's and
    os.access's view).
    `executable` False: only that a file is there (on PATH, or at the path), whatever this
    user may do with it: /ready asks as the health service's user, which need not be
    allowed to run the root-only script the failover (as root) runs. Raises ValueError
    for a line shlex cannot split (config validation caught that)."""
    words = shlex.split(command_line) if command_line else []
    program = words[0] if words else default
    if not program:
        return None
    if "/" in program:
        if not os.path.lexists(program):
            return "does not exist"
        there = os.path.isfile(program) and (not executable or os.access(program, os.X_OK))
        return None if there else ("is not an executable file" if executable
                                   else "is not a file")
    found = shutil.which(program, mode=os.X_OK if executable else os.F_OK)
    return None if found is not None else "is not found on PATH"
