"""The INI file: every key parses, relative paths resolve against the file, every problem
is reported at once with file, section and key, and `mirrord check-config` exits 2
without a traceback on a broken file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mirrord.config import (find_config, load, parse_bool, parse_duration, parse_every,
                            parse_hostport, parse_size)
from mirrord.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MIRRORD = ROOT / ".venv" / "bin" / "mirrord"


def write(tmp_path: Path, text: str, name: str = "mirrord.ini") -> Path:
    path = tmp_path / name
    if "keys/" in text:   # the files FULL names, which must exist (config/keyfiles.py)
        (tmp_path / "keys").mkdir(exist_ok=True)
        for key in ("ca.pem", "id_ed25519", "known_hosts"):
            (tmp_path / "keys" / key).touch(mode=0o600)
    path.write_text("\n".join(line.strip() for line in text.splitlines()) + "\n")
    path.chmod(0o600)
    return path


def problems(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, message) of every problem load() reports."""
    with pytest.raises(ConfigError) as info:
        load(path)
    for p in info.value.problems:
        assert p.file == str(path)
    return [(p.section, p.key, p.message) for p in info.value.problems]


def has(found, section: str, key: str, words: str = "") -> bool:
    return any(s == section and k == key and words in m for s, k, m in found)


MINIMAL = """
[source:up]
path = src
targets = mirror

[target:mirror]
type = local
path = mirror
"""

FULL = """
[mirrord]
state_dir = ./state
workers = 4
heartbeat_interval = 500ms
log_level = DEBUG
log_format = json
metrics_listen = 127.0.0.1:9108
hostname = web1

[source:up]
path = ./uploads
targets = mirror, bucket, host
exclude = *.tmp, *.part, .*.swp, *~, .nfs*, cache/*
dest = /site/up/

[target:mirror]
type = local
path = ../elsewhere/mirror
fsync = no
workers = 2

[target:bucket]
type = s3
bucket = my-bucket.1
prefix = uploads
endpoint_url = http://127.0.0.1:8333
region = eu-west-1
access_key_id = AKIAEXAMPLE
secret_access_key = s3cr3tvalue
addressing_style = path
acl = private
storage_class = STANDARD_IA
multipart_threshold = 8MiB
multipart_chunksize = 5M
ca_bundle = keys/ca.pem

[target:host]
type = rsync
host = mirror.example.org
port = 2222
user = mirrord
path = /srv/mirror/uploads/
ssh_key = keys/id_ed25519
known_hosts = keys/known_hosts
strict_host_key_checking = yes
rsync_path = /usr/local/bin/rsync
ssh_command = /usr/bin/ssh
connect_timeout = 1m
batch_size = 200

[reconcile]
every = 1h
delete = off
max_delete = 5%
checksum = true

[failover]
database = host=db dbname=app user=mirrord
primary_database = host=primary dbname=app
max_replay_lag = 10s
heartbeat_target = mirror
max_heartbeat_age = 2m
mode = symlink
link = current
readonly = releases/ro
readwrite = releases/rw
flag = ro.flag
message = Down for a moment
memcached = 127.0.0.1:11211, cache2, [::1]:11212
reload_command = systemctl reload php-fpm
connect_timeout = 3
statement_timeout = 2500ms
switchover_timeout = 10m
"""


# ------------------------------------------------------------------ value parsers


@pytest.mark.parametrize("text,seconds", [
    ("500ms", 0.5), ("5s", 5.0), ("10m", 600.0), ("1h", 3600.0), ("2d", 172800.0),
    ("7", 7.0), ("1.5", 1.5), (" 3 s ", 3.0),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "-1s", "s", "1h30m", "five"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text,n", [
    ("1024", 1024), ("8MiB", 8 << 20), ("64M", 64 << 20), ("5mb", 5 << 20), ("1k", 1024),
    ("2GiB", 2 << 30), ("1T", 1 << 40), ("10b", 10), ("3 KiB", 3072),
])
def test_sizes(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["1.5M", "M", "-3", "8 MB extra", "eight"])
def test_bad_sizes(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@pytest.mark.parametrize("text,value", [
    ("yes", True), ("True", True), ("on", True), ("1", True),
    ("no", False), ("FALSE", False), ("off", False), ("0", False),
])
def test_bools(text, value):
    assert parse_bool(text) is value


def test_bad_bool():
    with pytest.raises(ValueError):
        parse_bool("maybe")


def test_every_off_words():
    for text in ("", "0", "off", "never", "no"):
        assert parse_every(text) == 0.0
    assert parse_every("6h") == 6 * 3600


def test_hostports():
    assert parse_hostport("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_hostport("[::1]:11212") == ("::1", 11212)
    assert parse_hostport("cache", 11211) == ("cache", 11211)
    for bad in ("cache", ":80", "host:0", "host:70000", "host:http"):
        with pytest.raises(ValueError):
            parse_hostport(bad)


# ------------------------------------------------------------------ a complete file


def test_every_key_of_every_section_parses(tmp_path):
    cfg = load(write(tmp_path, FULL))
    m = cfg.mirrord
    assert m.state_dir == (tmp_path / "state").resolve()
    assert (m.workers, m.heartbeat_interval, m.log_level, m.log_format) == (4, 0.5, "debug", "json")
    assert m.metrics_listen == ("127.0.0.1", 9108) and m.hostname == "web1"

    (src,) = cfg.sources
    assert src.path == (tmp_path / "uploads").resolve()
    assert src.targets == ("mirror", "bucket", "host")
    assert src.exclude == ("*.tmp", "*.part", ".*.swp", "*~", ".nfs*", "cache/*")
    assert src.dest == "site/up"

    local = cfg.target("mirror")
    assert (local.type, local.workers) == ("local", 2)
    assert local.local.path == (tmp_path / ".." / "elsewhere" / "mirror").resolve()
    assert local.local.fsync is False

    s3 = cfg.target("bucket")
    assert s3.workers == 4        # the [mirrord] default
    o = s3.s3
    assert (o.bucket, o.prefix, o.endpoint_url, o.region) == (
        "my-bucket.1", "uploads/", "http://127.0.0.1:8333", "eu-west-1")
    assert (o.access_key_id, o.secret_access_key) == ("AKIAEXAMPLE", "s3cr3tvalue")
    assert (o.addressing_style, o.acl, o.storage_class, o.ca_bundle) == (
        "path", "private", "STANDARD_IA", str((tmp_path / "keys" / "ca.pem").resolve()))
    assert (o.multipart_threshold, o.multipart_chunksize) == (8 << 20, 5 << 20)
    assert "s3cr3tvalue" not in repr(cfg)

    assert cfg.target("host").workers == 2   # rsync: at most 2 unless its section says
    r = cfg.target("host").rsync
    assert (r.host, r.port, r.user, r.path) == ("mirror.example.org", 2222, "mirrord",
                                                "/srv/mirror/uploads")
    assert r.ssh_key == (tmp_path / "keys" / "id_ed25519").resolve()
    assert r.known_hosts == (tmp_path / "keys" / "known_hosts").resolve()
    assert (r.strict_host_key_checking, r.rsync_path, r.ssh_command) == (
        "yes", "/usr/local/bin/rsync", "/usr/bin/ssh")
    assert (r.connect_timeout, r.batch_size) == (60.0, 200)

    rc = cfg.reconcile
    assert (rc.every, rc.delete, rc.max_delete, rc.max_delete_percent, rc.checksum) == (
        3600.0, False, 0, 5.0, True)

    f = cfg.failover
    assert f.database == "host=db dbname=app user=mirrord"
    assert f.primary_database == "host=primary dbname=app"
    assert (f.max_replay_lag, f.heartbeat_target, f.max_heartbeat_age, f.mode) == (
        10.0, "mirror", 120.0, "symlink")
    assert f.link == tmp_path / "current"
    assert f.readonly == (tmp_path / "releases" / "ro").resolve()
    assert f.readwrite == (tmp_path / "releases" / "rw").resolve()
    assert f.flag == (tmp_path / "ro.flag").resolve()
    assert f.message == "Down for a moment"
    assert f.memcached == (("127.0.0.1", 11211), ("cache2", 11211), ("::1", 11212))
    assert f.reload_command == "systemctl reload php-fpm"
    assert (f.connect_timeout, f.statement_timeout, f.switchover_timeout) == (3.0, 2.5, 600.0)
    assert cfg.warnings == ()       # mode 600: no warning


def test_defaults_of_a_minimal_file(tmp_path):
    cfg = load(write(tmp_path, MINIMAL))
    assert cfg.mirrord.state_dir == (tmp_path / "state").resolve()
    assert (cfg.mirrord.workers, cfg.mirrord.heartbeat_interval, cfg.mirrord.log_level) == (8, 5.0, "info")
    assert cfg.mirrord.hostname
    assert cfg.reconcile.max_delete == 1000 and cfg.reconcile.max_delete_percent is None
    assert cfg.failover is None
    assert cfg.target("mirror").local.fsync is True
    assert cfg.sources_for("mirror") == cfg.sources


def test_max_delete_as_a_count(tmp_path):
    cfg = load(write(tmp_path, MINIMAL + "[reconcile]\nmax_delete = 25\n"))
    assert (cfg.reconcile.max_delete, cfg.reconcile.max_delete_percent) == (25, None)


def test_a_pass_at_start_unless_at_start_is_off(tmp_path):
    assert load(write(tmp_path, MINIMAL)).reconcile.at_start is True
    cfg = load(write(tmp_path, MINIMAL + "[reconcile]\nat_start = no\n"))
    assert cfg.reconcile.at_start is False
    found = problems(write(tmp_path, MINIMAL + "[reconcile]\nat_start = sometimes\n"))
    assert has(found, "reconcile", "at_start", "yes/no")


@pytest.mark.parametrize("value", ["-1", "150%", "lots", "5.5"])
def test_bad_max_delete(tmp_path, value):
    found = problems(write(tmp_path, MINIMAL + f"[reconcile]\nmax_delete = {value}\n"))
    assert has(found, "reconcile", "max_delete", "count like 1000 or a percentage")


def test_relative_paths_resolve_against_the_file_not_the_cwd(tmp_path, monkeypatch):
    conf = tmp_path / "etc"
    conf.mkdir()
    path = write(conf, MINIMAL)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load(os.path.relpath(path, elsewhere))
    assert cfg.sources[0].path == (conf / "src").resolve()
    assert cfg.target("mirror").local.path == (conf / "mirror").resolve()
    assert cfg.mirrord.state_dir == (conf / "state").resolve()


def test_dot_dot_means_one_place_for_every_key_under_a_symlinked_config_dir(tmp_path):
    """`-c link/f.ini` with link -> real/conf and `../src`, `../state`, `../mirror`: the
    source root (kept as written) went lexically to link's parent while the resolved keys
    went to real/ (a breaker). Every key now joins the config's real directory."""
    real = tmp_path / "real"
    (real / "conf").mkdir(parents=True)
    (real / "src").mkdir()
    (tmp_path / "link").symlink_to(real / "conf")
    (real / "conf" / "f.ini").write_text(
        "[mirrord]\nstate_dir = ../state\n[source:up]\npath = ../src\ntargets = t\n"
        "[target:t]\ntype = local\npath = ../mirror\n"
        "[failover]\ndatabase = host=127.0.0.1 dbname=x\nlink = ../etc/active.php\n"
        "readonly = ../etc/ro.php\nreadwrite = ../etc/rw.php\n")
    cfg = load(tmp_path / "link" / "f.ini")
    assert cfg.sources[0].path == real / "src"
    assert cfg.mirrord.state_dir == real / "state"
    assert cfg.target("t").local.path == real / "mirror"
    assert cfg.failover.link == real / "etc" / "active.php"


def test_exclude_matches_components_and_whole_paths(tmp_path):
    cfg = load(write(tmp_path, MINIMAL.replace("targets = mirror",
                                               "targets = mirror\nexclude = *.tmp, .*, cache/*")))
    src = cfg.sources[0]
    assert src.excluded("x.tmp") and src.excluded("a/b/x.tmp")
    assert src.excluded(".hidden/file") and src.excluded("a/.git")
    assert src.excluded("cache/x") and not src.excluded("a/cache/x")
    assert not src.excluded("x.tmp.jpg") and not src.excluded("photo.jpg")


# ------------------------------------------------------------------ problems, all at once


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(tmp_path, """
        [mirrord]
        workers = many
        heartbeat_interval = soon
        log_level = chatty
        colour = blue

        [sources:typo]
        path = x

        [source:up]
        targets = mirror, nowhere
        dest = ../escape

        [target:mirror]
        type = local
        path = mirror
        fsync = perhaps

        [target:bucket]
        type = s3
        bucket = Bad_Bucket
        access_key_id = AKIA

        [target:host]
        type = rsync
        host = -oProxyCommand=evil
        user = -x
        path = relative/path
        port = ssh

        [target:weird]
        type = ftp
        """)
    found = problems(path)
    expected = [
        ("mirrord", "workers", "not a whole number: 'many'"),
        ("mirrord", "heartbeat_interval", "not a duration"),
        ("mirrord", "log_level", "must be one of"),
        ("mirrord", "colour", "unknown key"),
        ("sources:typo", "", "unknown section"),
        ("source:up", "path", "is required"),
        ("source:up", "targets", "names no [target:nowhere]"),
        ("source:up", "dest", "plain relative sub-path"),
        ("target:mirror", "fsync", "yes/no"),
        ("target:bucket", "bucket", "not a valid bucket name"),
        ("target:bucket", "secret_access_key", "go together"),
        ("target:host", "host", "must not start with '-'"),
        ("target:host", "user", "not a valid user name"),
        ("target:host", "path", "absolute path"),
        ("target:host", "port", "not a whole number: 'ssh'"),
        ("target:weird", "type", "must be one of local, s3, rsync"),
    ]
    for section, key, words in expected:
        assert has(found, section, key, words), (section, key, words, found)


def test_unknown_key_in_each_section(tmp_path):
    path = write(tmp_path, MINIMAL.replace("targets = mirror", "targets = mirror\ncolor = 1")
                 .replace("type = local", "type = local\nbucket = x") + """
        [reconcile]
        often = 1
        [failover]
        database = host=x
        mode = flagfile
        flag = f
        speed = 3
        """)
    found = problems(path)
    for section, key in [("source:up", "color"), ("target:mirror", "bucket"),
                         ("reconcile", "often"), ("failover", "speed")]:
        assert has(found, section, key, "unknown key"), (section, key, found)


def test_missing_required_keys(tmp_path):
    found = problems(write(tmp_path, """
        [source:up]
        path = src
        [target:mirror]
        type = local
        [target:b]
        type = s3
        [target:h]
        type = rsync
        [failover]
        mode = symlink
        """))
    for section, key in [("source:up", "targets"), ("target:mirror", "path"),
                         ("target:b", "bucket"), ("target:h", "host"), ("target:h", "path"),
                         ("failover", "database"), ("failover", "link"),
                         ("failover", "readonly"), ("failover", "readwrite")]:
        assert has(found, section, key, "required"), (section, key, found)


def test_bad_types_everywhere(tmp_path):
    found = problems(write(tmp_path, MINIMAL.replace("type = local", "type = local\nworkers = 0") + """
        [mirrord]
        metrics_listen = nowhere
        log_format = xml
        heartbeat_interval = 0
        [reconcile]
        every = sometimes
        delete = perhaps
        [failover]
        database = host=x
        mode = teleport
        max_replay_lag = slow
        memcached = cache:notaport
        heartbeat_target = ghost
        """))
    for section, key, words in [
            ("target:mirror", "workers", "at least 1"),
            ("mirrord", "metrics_listen", "host:port"), ("mirrord", "log_format", "text or json"),
            ("mirrord", "heartbeat_interval", "at least 100ms"),
            ("reconcile", "every", "not a duration"), ("reconcile", "delete", "yes/no"),
            ("failover", "mode", "symlink or flagfile"), ("failover", "max_replay_lag", "duration"),
            ("failover", "memcached", "host:port"),
            ("failover", "heartbeat_target", "no [target:ghost]")]:
        assert has(found, section, key, words), (section, key, words, found)


@pytest.mark.parametrize("section, key, value, words", [
    ("mirrord", "heartbeat_interval", "0.5ms", "at least 100ms"),
    ("mirrord", "heartbeat_interval", "99ms", "at least 100ms"),
    ("reconcile", "every", "1ms", "at least 1s, or 0 / off"),
    ("reconcile", "every", "0.5", "at least 1s, or 0 / off"),
])
def test_an_interval_too_short_to_be_meant_is_a_problem(tmp_path, section, key, value, words):
    """A heartbeat is a write to every target, a pass a listing of every target: a
    heartbeat every 0.5 ms or a pass every millisecond (meant 1m?) was taken and ran
    (found by trying it as a user)."""
    found = problems(write(tmp_path, f"[{section}]\n{key} = {value}\n" + MINIMAL))
    assert [(s, k) for s, k, m in found if words in m] == [(section, key)], found


@pytest.mark.parametrize("section, key, value", [
    ("mirrord", "heartbeat_interval", "100ms"), ("reconcile", "every", "1s"),
    ("reconcile", "every", "off"), ("reconcile", "every", "0")])
def test_the_shortest_intervals_allowed_load(tmp_path, section, key, value):
    load(write(tmp_path, f"[{section}]\n{key} = {value}\n" + MINIMAL))


def test_small_multipart_chunks_and_bad_prefix_refused(tmp_path):
    found = problems(write(tmp_path, MINIMAL + """
        [target:b]
        type = s3
        bucket = ok-bucket
        prefix = /abs
        multipart_chunksize = 1MiB
        addressing_style = sideways
        """))
    assert has(found, "target:b", "prefix", "must not start with '/'")
    assert has(found, "target:b", "multipart_chunksize", "5MiB")
    assert has(found, "target:b", "addressing_style", "auto, path or virtual")


@pytest.mark.parametrize("bucket", ["ab", "Upper", "under_score", "-lead", "trail-", "x" * 64])
def test_bad_bucket_names(tmp_path, bucket):
    found = problems(write(tmp_path, MINIMAL + f"[target:b]\ntype = s3\nbucket = {bucket}\n"))
    assert has(found, "target:b", "bucket", "not a valid bucket name")


@pytest.mark.parametrize("target_path", ["src", "src/inside", "."])
def test_local_target_overlapping_the_source_is_refused(tmp_path, target_path):
    found = problems(write(tmp_path, MINIMAL.replace("path = mirror", f"path = {target_path}")))
    assert has(found, "target:mirror", "path", "overlaps the source")


def test_local_target_overlap_through_a_symlink_is_refused(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "src")
    found = problems(write(tmp_path, MINIMAL.replace("path = mirror", "path = alias/m")))
    assert has(found, "target:mirror", "path", "overlaps the source")


TWO_SOURCES = MINIMAL + """
[source:two]
path = {two}
targets = mirror2

[target:mirror2]
type = local
path = {mirror2}
"""


@pytest.mark.parametrize("two, mirror2, section, source", [
    ("mirror/x", "m2", "target:mirror", "two"),      # a source inside another source's target
    ("mirror", "m2", "target:mirror", "two"),        # ... the same directory
    (".", "m2", "target:mirror", "two"),             # ... around it
    ("other", "src/m2", "target:mirror2", "up"),     # a target inside another source
    ("other", ".", "target:mirror2", "up"),          # ... around it
], ids=["source inside", "source equal", "source around", "target inside", "target around"])
def test_a_local_target_overlapping_a_source_it_does_not_mirror_is_refused(
        tmp_path, two, mirror2, section, source):
    """Before, only the sources listing a target were compared with it: reconcile of
    `mirror` deleted source two's files in mirror/x as extra."""
    found = problems(write(tmp_path, TWO_SOURCES.format(two=two, mirror2=mirror2)))
    assert has(found, section, "path", f"([source:{source}] path): a target's path must be "
               "neither inside nor around any source's"), found


def test_a_target_listed_by_no_source_is_still_refused_inside_a_source(tmp_path):
    found = problems(write(tmp_path, MINIMAL + "[target:spare]\ntype = local\npath = src/spare\n"))
    assert has(found, "target:spare", "path", "overlaps the source")


def test_separate_sources_and_targets_load(tmp_path):
    cfg = load(write(tmp_path, TWO_SOURCES.format(two="other", mirror2="m2")))
    assert [s.name for s in cfg.sources] == ["up", "two"]


def test_check_config_refuses_a_source_inside_another_sources_target(tmp_path):
    path = write(tmp_path, TWO_SOURCES.format(two="mirror/x", mirror2="m2"))
    res = run_cli("-c", str(path), "check-config", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [(
        f"mirrord: config error: {path}: [target:mirror] path: {tmp_path / 'mirror'} overlaps "
        f"the source {tmp_path / 'mirror' / 'x'} ([source:two] path): a target's path must be "
        "neither inside nor around any source's, whichever sources it mirrors (its reconcile "
        "deletes as extra what its own sources do not hold)")]


def test_state_dir_inside_a_source_is_refused(tmp_path):
    found = problems(write(tmp_path, "[mirrord]\nstate_dir = src/.state\n" + MINIMAL))
    assert has(found, "mirrord", "state_dir", "inside the source")


def test_two_sources_with_the_same_dest_on_one_target_are_refused(tmp_path):
    text = MINIMAL + "[source:other]\npath = src2\ntargets = mirror\n"
    found = problems(write(tmp_path, text))
    assert has(found, "source:other", "dest", "give each source its own dest")
    cfg = load(write(tmp_path, text + "dest = b\n"))
    assert {s.dest for s in cfg.sources} == {"", "b"}


def test_dest_inside_mirrords_own_area_is_refused(tmp_path):
    found = problems(write(tmp_path, MINIMAL.replace("targets = mirror",
                                                     "targets = mirror\ndest = .mirrord/x")))
    assert has(found, "source:up", "dest", ".mirrord")


def test_files_that_are_not_ini_or_missing(tmp_path):
    missing = tmp_path / "nope.ini"
    with pytest.raises(ConfigError, match="no such file"):
        load(missing)
    junk = tmp_path / "junk.ini"
    junk.write_text("this is not [an ini file\n")
    with pytest.raises(ConfigError, match="not a valid INI file"):
        load(junk)
    dup = tmp_path / "dup.ini"
    dup.write_text(MINIMAL + "[target:mirror]\ntype = local\npath = m2\n")
    with pytest.raises(ConfigError, match="not a valid INI file"):
        load(dup)


# ------------------------------------------------------------------ secrets


def test_a_secret_readable_by_others_warns(tmp_path):
    path = write(tmp_path, FULL)
    path.chmod(0o644)
    cfg = load(path)
    assert len(cfg.warnings) == 1
    assert "holds a secret but is readable by others" in cfg.warnings[0]
    assert "s3cr3tvalue" not in cfg.warnings[0]


def test_a_password_in_a_conninfo_counts_as_a_secret(tmp_path):
    path = write(tmp_path, MINIMAL + """
        [failover]
        database = host=db password=hunter2
        mode = flagfile
        flag = f
        """)
    path.chmod(0o640)
    assert load(path).warnings
    path.chmod(0o600)
    assert load(path).warnings == ()


def test_no_secret_no_warning(tmp_path):
    path = write(tmp_path, MINIMAL)
    path.chmod(0o644)
    assert load(path).warnings == ()


# ------------------------------------------------------------------ lookup order


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIRRORD_CONFIG", raising=False)
    assert find_config("given.ini") == Path("given.ini")
    assert find_config(None) == Path("/etc/mirrord/mirrord.ini")   # nothing else exists here
    (tmp_path / "mirrord.ini").write_text(MINIMAL)
    assert find_config(None) == Path("./mirrord.ini")
    monkeypatch.setenv("MIRRORD_CONFIG", "/from/env.ini")
    assert find_config(None) == Path("/from/env.ini")
    assert find_config("given.ini") == Path("given.ini")


# ------------------------------------------------------------------ the real console script


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "MIRRORD_CONFIG"}
    full_env.update(env or {})
    return subprocess.run([str(MIRRORD), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=60)


BROKEN = """
[mirrord]
workers = lots

[source:up]
path = src
targets = mirror, ghost

[target:mirror]
type = local
path = src/mirror
frobnicate = 1
"""


def test_check_config_on_a_broken_file_exits_2_with_one_line_per_problem(tmp_path):
    path = write(tmp_path, BROKEN)
    res = run_cli("-c", str(path), "check-config", cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 4, res.stderr
    for line in lines:
        assert line.startswith(f"mirrord: config error: {path}: [")
    text = res.stderr
    assert "[mirrord] workers:" in text
    assert "[source:up] targets: names no [target:ghost]" in text
    assert "[target:mirror] frobnicate: unknown key" in text
    assert "[target:mirror] path:" in text and "overlaps the source" in text


def test_check_config_on_a_good_file_prints_what_it_understood(tmp_path):
    path = write(tmp_path, FULL)
    res = run_cli("-c", str(path), "check-config", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"{path}: ok" in res.stdout
    assert "source up:" in res.stdout and "target host (rsync" in res.stdout
    assert "s3cr3tvalue" not in res.stdout + res.stderr


def test_check_config_finds_the_file_through_env_then_cwd(tmp_path):
    (tmp_path / "mirrord.ini").write_text(MINIMAL)
    other = tmp_path / "other"
    other.mkdir()
    write(other, BROKEN, "broken.ini")
    res = run_cli("check-config", cwd=tmp_path)
    assert res.returncode == 0 and f"{tmp_path / 'mirrord.ini'}: ok" in res.stdout
    res = run_cli("check-config", cwd=tmp_path, env={"MIRRORD_CONFIG": str(other / "broken.ini")})
    assert res.returncode == 2 and "broken.ini" in res.stderr
    res = run_cli("-c", str(tmp_path / "mirrord.ini"), "check-config", cwd=tmp_path,
                  env={"MIRRORD_CONFIG": str(other / "broken.ini")})
    assert res.returncode == 0


def test_check_config_on_a_missing_file_exits_2(tmp_path):
    res = run_cli("-c", str(tmp_path / "absent.ini"), "check-config", cwd=tmp_path)
    assert res.returncode == 2
    assert "no such file" in res.stderr and "Traceback" not in res.stderr


def test_an_rsync_target_takes_at_most_two_workers_unless_its_section_sets_more(tmp_path):
    body = """
[mirrord]
state_dir = {state}
workers = {workers}

[source:up]
path = {src}
targets = host

[target:host]
type = rsync
host = mirror.example.org
path = /srv/mirror
{extra}
"""
    src = tmp_path / "src"
    src.mkdir()
    for workers, extra, want in ((8, "", 2), (1, "", 1), (8, "workers = 6", 6)):
        path = tmp_path / "m.ini"
        path.write_text(body.format(state=tmp_path / "state", workers=workers, src=src, extra=extra))
        assert load(path).target("host").workers == want


def test_an_s3_target_takes_sixteen_workers_unless_mirrord_or_its_section_sets_them(tmp_path):
    """S3_DEFAULT_WORKERS applies only when nothing is written: [mirrord] workers, written,
    is every target's default again; the target's own key wins; a local target beside it
    (fsync on, the default) keeps the [mirrord] default of 8 (with fsync off:
    tests/unit/test_worker_defaults.py)."""
    src = tmp_path / "src"
    src.mkdir()
    body = """
[mirrord]
state_dir = {state}
{mirrord}

[source:up]
path = {src}
targets = bucket, mirror

[target:bucket]
type = s3
bucket = mirror-bucket
{extra}

[target:mirror]
type = local
path = {dest}
"""
    for mirrord, extra, want_s3, want_local in (("", "", 16, 8), ("workers = 8", "", 8, 8),
                                                ("workers = 3", "", 3, 3),
                                                ("", "workers = 5", 5, 8),
                                                ("workers = 8", "workers = 20", 20, 8)):
        path = tmp_path / "m.ini"
        path.write_text(body.format(state=tmp_path / "state", mirrord=mirrord, src=src,
                                    extra=extra, dest=tmp_path / "dest"))
        cfg = load(path)
        assert (cfg.target("bucket").workers, cfg.target("mirror").workers) == (
            want_s3, want_local), (mirrord, extra)


def test_check_config_warns_of_a_local_target_path_that_is_a_file(tmp_path):
    """As for a source root that is not a directory (a warning, exit 0: a mount may be
    away): before, nothing was said, and `mirrord run` retried the target as not reachable."""
    (tmp_path / "src").mkdir()
    (tmp_path / "mirror").write_text("not a directory")
    res = run_cli("-c", str(write(tmp_path, MINIMAL)), "check-config", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (f"warning: {tmp_path / 'mirror'} is not a directory now ([target:mirror] path)"
            in res.stdout)
    (tmp_path / "mirror").unlink()   # missing: made at start, no warning
    res = run_cli("-c", str(write(tmp_path, MINIMAL)), "check-config", cwd=tmp_path)
    assert res.returncode == 0 and "warning" not in res.stdout + res.stderr, res.stdout


def test_a_target_without_type_is_told_type_is_required(tmp_path, capsys):
    """It said `type: must be one of local, s3, rsync, got ''` (a new user's report)."""
    from mirrord.cli import main as cli_main
    path = write(tmp_path, MINIMAL + "\n[target:spare]\npath = /srv/spare\n")
    assert cli_main.main(["-c", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: [target:spare] type: is required: one of local, s3, rsync" in err, err
    assert "got ''" not in err


def test_an_environment_assignment_in_a_command_reads_whole_through_the_redaction(tmp_path, capsys):
    """The message's `SSHPASS=...:` was taken by the output's redaction of NAME=VALUE with
    its punctuation: 'starts with the environment assignment SSHPASS=*** commands run'."""
    from mirrord.cli import main as cli_main
    path = write(tmp_path, MINIMAL + "\n[target:host]\ntype = rsync\nhost = h\npath = /m\n"
                 "ssh_command = SSHPASS=hunter2 ssh\n")
    assert cli_main.main(["-c", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert ("[target:host] ssh_command: starts with an assignment to the environment variable "
            "SSHPASS; commands run without a shell, so put `env` before it") in err, err
    assert "hunter2" not in err and "***" not in err


def test_check_config_shows_the_watcher_the_alarm_and_keeping(tmp_path):
    """What was understood of the settings that decide safety is printed, not only in
    --json: the watcher, the alarm and whether it holds deletes, a target's keep_deleted
    and its cap (found by trying it as a user: the text left them out)."""
    (tmp_path / "src").mkdir()
    path = tmp_path / "m.ini"
    path.write_text(f"""
[source:up]
path = {tmp_path / 'src'}
targets = t, u
watcher = inotify
alarm_deletes = 50
alarm_window = 2m
pause_on_alarm = yes

[target:t]
type = local
path = {tmp_path / 'm1'}
keep_deleted = 7d
keep_deleted_max = 10G

[target:u]
type = local
path = {tmp_path / 'm2'}
""")
    res = run_cli("-c", str(path), "check-config", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = [line.strip() for line in res.stdout.splitlines()]
    assert ("watcher inotify; alarm above 50 deletes or overwrites within 120s, then deletes "
            "held until resume-deletes") in lines, res.stdout
    assert "keeps deleted and overwritten files 604800s, at most 10,737,418,240 bytes" in lines
    assert sum("keeps deleted" in line for line in lines) == 1, res.stdout   # u keeps nothing
