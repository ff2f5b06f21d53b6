"""Loading a file: every section read, cross-references checked, every problem
reported at once; and where the config file is found.
"""

from __future__ import annotations

import configparser
import errno
import io
import os
import stat
from pathlib import Path

from mirrord import filekinds
from mirrord.config.addresses import conninfo_password
from mirrord.config.failover import _read_failover, _read_health
from mirrord.config.keypaths import S3_KEY_MAX
from mirrord.config.hostplaces import check_own_files_outside_targets, here as _here
from mirrord.config.hostplaces import inside as _inside
from mirrord.config.overlap import check_target_overlaps
from mirrord.config.switchpaths import check_switch_paths
from mirrord.config.names import check_printed_words, check_section_name
from mirrord.config.model import Config, DEFAULT_PATHS, SECRET_KEYS, SourceConfig, TargetConfig
from mirrord.config.sections import _read_mirrord, _read_reconcile, _read_source, _read_target
from mirrord.config.values import _Reader
from mirrord.errors import ConfigError, ConfigProblem


def _check_sources_outside_local_targets(r: _Reader, sources: list[SourceConfig],
                                         targets: dict[str, TargetConfig]) -> None:
    """A problem at [target:T] path for each local target and source whose paths overlap
    (one inside, around or equal to the other), whichever sources list the target: the
    README's rule for `path`, "must not overlap a source". A target's reconcile deletes
    what it holds that its own sources do not: checked only against the sources listing
    it, `[source:two] path = ./mirror/x` beside `[target:local] path = ./mirror` (listed
    by another source) passed, and a reconcile of local deleted source two's files."""
    unusable = {(p.section, p.key) for p in r.problems}   # a placeholder path: no overlap
    for t in targets.values():
        path = _here(t)
        if path is None or (f"target:{t.name}", "path") in unusable:
            continue
        for src in sources:
            if (f"source:{src.name}", "path") in unusable:
                continue
            if _inside(path, src.path) or _inside(src.path, path):
                r.problem(f"target:{t.name}", "path",
                          f"{path} overlaps the source {src.path} ([source:{src.name}] "
                          "path): a target's path must be neither inside nor around any "
                          "source's, whichever sources it mirrors (its reconcile deletes as "
                          "extra what its own sources do not hold)")


def _check_cross_references(r: _Reader, sources: list[SourceConfig],
                            targets: dict[str, TargetConfig], state_dir: Path) -> None:
    """`state_dir`: [mirrord] state_dir as read (its default when not set)."""
    names: dict[tuple[str, str], str] = {}
    for src in sources:
        section = f"source:{src.name}"
        for tname in src.targets:
            t = targets.get(tname)
            if t is None:
                r.problem(section, "targets", f"names no [target:{tname}] section")
                continue
            if t.s3 is not None and src.dest and len(
                    (t.s3.prefix + src.dest + "/").encode()) >= S3_KEY_MAX:
                r.problem(section, "dest", f"with [target:{tname}] prefix it leaves no room for "
                          f"a file name within S3's {S3_KEY_MAX}-byte key limit")
            key = (tname, src.dest)
            if key in names:
                r.problem(section, "dest", f"source {names[key]} already mirrors to target {tname} "
                          f"with dest {src.dest!r}; give each source its own dest")
            names[key] = src.name
    _check_sources_outside_local_targets(r, sources, targets)
    check_target_overlaps(r, targets)
    for src in sources:
        if r.parser.has_option("mirrord", "state_dir") and _inside(state_dir, src.path):
            r.problem("mirrord", "state_dir", f"{state_dir} is inside the source {src.path}")


def _warn_if_secret_readable(r: _Reader) -> None:
    """A warning when the file holds a secret and others may read it. The conninfo's
    password is found by libpq's own parser: `password = x` (spaces) and the URI form
    `postgresql://user:x@host` were missed by a search for "password="."""
    has_secret = any(
        r.parser.has_option(sec, key) and r.parser.get(sec, key).strip()
        for sec in r.parser.sections() for key in SECRET_KEYS
    ) or any(conninfo_password(r.parser.get(sec, k) or "")
             for sec in r.parser.sections() for k in ("database", "primary_database")
             if r.parser.has_option(sec, k))
    try:
        mode = r.file.stat().st_mode
    except OSError:
        return
    if has_secret and mode & 0o077:
        r.warnings.append(f"{r.file} holds a secret but is readable by others "
                          f"(mode {mode & 0o777:o}); chmod 600 it")


# The largest config file read. A real one is a few KiB; the limit bounds what a wrong -c
# costs (`-c /var/log/big.log`) and keeps configparser's whole-file parse quick.
MAX_CONFIG_BYTES = 1 << 20


def read_text(p: Path, *, limit: int = MAX_CONFIG_BYTES) -> str:
    """The text of config file `p`: a regular file of at most `limit` bytes of UTF-8 (a
    byte order mark is dropped; a NUL byte is left to the key it is in). Raises ValueError saying what it is
    instead, FileNotFoundError when there is none, OSError when it cannot be opened.

    Opened with O_NONBLOCK and checked with fstat on that descriptor, before a byte is
    read: `-c /dev/zero` or `-c /dev/urandom` read forever, and a FIFO would block in
    open(2) until a writer came (O_NONBLOCK: open(2) returns at once for a FIFO opened to
    read). Checking the descriptor, not the name, leaves no window for the name to be
    swapped between the check and the read. A socket is refused by open(2) itself (ENXIO)."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISSOCK(os.stat(p).st_mode):
            raise ValueError("is a socket, not a config file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        _refuse(fd)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)    # the file may have grown since fstat: never read more
    if len(data) > limit:
        raise ValueError(f"is larger than {limit:,} bytes: not a mirrord config file")
    try:
        # utf-8-sig: a byte order mark (Windows editors write one) is not part of the
        # first line; as utf-8 it made "[mirrord]" read as "\ufeff[mirrord]", refused as
        # "File contains no section headers"
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                         "save it as UTF-8") from None


def _refuse(fd: int) -> None:
    """Close `fd` (not a regular file) and raise ValueError naming what it is."""
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    raise ValueError(f"is {filekinds.kind(mode)}, not a config file")


def _ini_error(exc: configparser.Error) -> str:
    """configparser's reason for refusing a file, in one line and without the text of the
    line it refused: configparser quotes that line whole, and a `secret_access_key X` (no
    '=') or a key above the first section can be a secret."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return (f"line {exc.lineno} comes before the first [section] header (not shown: a "
                "line may hold a secret)")
    if isinstance(exc, configparser.ParsingError):
        numbers = [str(lineno) for lineno, _ in exc.errors]
        which = f"lines {', '.join(numbers)} are" if len(numbers) > 1 else f"line {numbers[0]} is"
        return (f"{which} neither a [section] header nor key = value (not shown: a line "
                "may hold a secret)")
    return str(exc).replace("\n", " ")   # duplicates: names of sections and keys only


def _header_closed(text: str) -> None:
    """Raise ValueError naming the first line of `text` (a config file) that opens a
    [section] header and does not close it (an unindented line starting with '[' and no
    ']'). configparser reads `[source:s` as the key `[source` with the value `s` (':' is
    a key delimiter), so the mistake was reported as an unknown key `[source` in the
    section above and the keys after it as unknown there too, or, on line 1, as a line
    before the first header (found by trying it as a user). Indented lines continue a
    value and are not looked at. The line is not shown: it may hold a secret."""
    # lines as configparser reads them (io: \n, \r, \r\n), not str.splitlines, which
    # also breaks at U+0085 or U+2028 inside a section name
    for lineno, line in enumerate(io.StringIO(text), 1):
        if line.startswith("[") and "]" not in line:
            raise ValueError(f"is not a valid INI file: line {lineno} opens a [section] "
                             "header and does not close it (no ']'; not shown: a line may "
                             "hold a secret)")


def load(path: str | os.PathLike[str]) -> Config:
    """Parse and validate a config file; raises ConfigError listing every problem (a file
    that is not a regular UTF-8 text file of at most MAX_CONFIG_BYTES: one, see read_text)."""
    p = Path(path).absolute()
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=True,
                                          default_section="__defaults_unused__")
    try:
        text = read_text(p)
        _header_closed(text)
        parser.read_string(text, source=str(p))
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(p), "", "", "no such file")]) from None
    except ValueError as exc:
        raise ConfigError([ConfigProblem(str(p), "", "", str(exc))]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(p), "", "",
                                         f"cannot read: {exc.strerror or exc}")]) from None
    except configparser.Error as exc:
        raise ConfigError([ConfigProblem(str(p), "", "",
                                         f"not a valid INI file: {_ini_error(exc)}")]) from None
    if not parser.sections():   # empty, or comments only: a wrong file, never a setup
        raise ConfigError([ConfigProblem(str(p), "", "", "holds no section: nothing to mirror "
                                         "(expected [source:NAME] and [target:NAME])")])
    r = _Reader(p, parser)
    _secrets_cut(r, text)
    return _build(r)


# keys whose values may hold a credential: an inline comment (" ;") cut there is a secret
# cut short, found only later as SignatureDoesNotMatch or a refused login (a breaker)
_SECRET_KEYS = ("secret_access_key", "access_key_id", "database", "primary_database")


def _secrets_cut(r: _Reader, text: str) -> None:
    """A problem for each credential-holding key whose value the inline comment prefix cut:
    the same file read without inline comments holds more there. The value is not shown."""
    whole = configparser.RawConfigParser(strict=False, default_section="__defaults_unused__")
    try:
        whole.read_string(text)
    except configparser.Error:
        return
    for section in r.parser.sections():
        for key in _SECRET_KEYS:
            if (r.parser.has_option(section, key) and whole.has_option(section, key)
                    and whole.get(section, key) != r.parser.get(section, key)):
                instead = ("leave it out and give the credentials through boto3's chain "
                           "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws/credentials)"
                           if "key" in key else
                           "give the password through a passfile instead (libpq: passfile=, "
                           "~/.pgpass)")
                r.problem(section, key, "holds ' ;', which starts a comment in this file: the "
                          f"value would be cut there; {instead}")


def _build(r: _Reader) -> Config:
    settings = _read_mirrord(r)
    sources: list[SourceConfig] = []
    targets: dict[str, TargetConfig] = {}
    for section in r.parser.sections():
        kind, _, name = section.partition(":")
        if kind in ("mirrord", "reconcile", "failover", "health") and not name:
            continue
        if kind in ("target", "source") and name:
            check_section_name(r, section, name)
        if kind == "target" and name:
            targets[name] = _read_target(r, section, name, settings.workers)
        elif kind == "source" and name:
            sources.append(_read_source(r, section, name))
        else:
            r.problem(section, "", "unknown section (known: [mirrord], [source:NAME], "
                      "[target:NAME], [reconcile], [failover], [health])")
    _check_cross_references(r, sources, targets, settings.state_dir)
    check_printed_words(r)
    reconcile = _read_reconcile(r)
    failover = _read_failover(r, targets)
    # after [failover]: its link and flag are mirrord's own files too
    check_own_files_outside_targets(r, targets, settings.state_dir, failover)
    check_switch_paths(r, settings.state_dir, failover)   # and not on mirrord's own files
    health = _read_health(r)
    _warn_if_secret_readable(r)
    if r.problems:
        raise ConfigError(r.problems, tuple(r.warnings))
    return Config(path=r.file, mirrord=settings, sources=tuple(sources), targets=targets,
                  reconcile=reconcile, failover=failover, warnings=tuple(r.warnings),
                  health=health)


def find_config(explicit: str | None) -> Path:
    """-c, else $MIRRORD_CONFIG, else ./mirrord.ini, else /etc/mirrord/mirrord.ini.
    ConfigError when MIRRORD_CONFIG is set but empty."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("MIRRORD_CONFIG")
    if env is not None and not env.strip():
        # `MIRRORD_CONFIG=$CONF` with CONF unset: as `-c ""`, never a silent fall back to
        # ./mirrord.ini or /etc/mirrord/mirrord.ini (dispatch._config_path)
        raise ConfigError([ConfigProblem("$MIRRORD_CONFIG", "", "", "is set but empty: "
                                         "name the config file, or unset it")])
    if env:
        return Path(env)
    for candidate in DEFAULT_PATHS:
        if Path(candidate).exists():
            return Path(candidate)
    return Path(DEFAULT_PATHS[-1])
