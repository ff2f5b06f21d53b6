"""mirrord's own files on this host (state_dir, the failover's link and flag) must not
overlap a place a target writes or deletes on this host: a local target's `path`, or an
rsync target's `path` on a loopback host (mirrord/config/hostplaces.py). Either way round
is one problem at the own file's key.

Before: `[mirrord] state_dir = R/state` beside `[target:t] type = rsync, host =
127.0.0.1, path = R` passed check-config, and every `mirrord reconcile` pass deleted
journal.db and the lock files as extras (exit 0, "in sync"); a target's root inside
state_dir, and a failover flag inside a local target's root, passed as well."""

from __future__ import annotations

import socket

import pytest

from mirrord.config import load
from tests.unit.test_config import has, problems, write

BASE = """
[mirrord]
state_dir = {state}

[source:up]
path = {src}
targets = t

[target:t]
{target}
"""
LOCAL = "type = local\npath = {path}"
RSYNC = "type = rsync\nhost = {host}\npath = {path}"
FAILOVER = """
[failover]
database = host=db dbname=app
mode = {mode}
link = {link}
readonly = {tmp}/app/ro
readwrite = {tmp}/app/rw
flag = {flag}
"""


def shape(tmp_path, where: str) -> tuple[str, str]:
    """(state_dir, target root) for `where`: inside, equal, around, linked (state_dir
    reached through a symlink into the target's root)."""
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    if where == "linked":
        (tmp_path / "link").symlink_to(root)
        return str(tmp_path / "link" / "state"), str(root)
    return {"inside": (str(root / "state"), str(root)),
            "equal": (str(root), str(root)),
            "around": (str(root), str(root / "mirror"))}[where]


def config(tmp_path, state: str, target: str, extra: str = "") -> str:
    (tmp_path / "src").mkdir(exist_ok=True)
    return write(tmp_path, BASE.format(state=state, src=tmp_path / "src", target=target)
                 + extra)


@pytest.mark.parametrize("where", ["inside", "equal", "around", "linked"])
@pytest.mark.parametrize("kind", ["local", "127.0.0.1", "127.0.1.1", "localhost", "::1",
                                  "mirror.localhost", "127.1", "0.0.0.0", "::ffff:127.0.0.1",
                                  "2130706433", socket.gethostname()])
def test_state_dir_overlapping_a_target_root_on_this_host_is_refused(tmp_path, where, kind):
    state, root = shape(tmp_path, where)
    target = (LOCAL.format(path=root) if kind == "local"
              else RSYNC.format(host=kind, path=root))
    found = problems(config(tmp_path, state, target))
    words = "is inside [target:t] path" if where in ("inside", "equal", "linked") else \
        "holds [target:t] path"
    assert has(found, "mirrord", "state_dir", words), found
    assert [k for s, k, _ in found] == ["state_dir"], found


@pytest.mark.parametrize("host", ["mirror.example.org", "10.0.0.7", "::2"])
@pytest.mark.parametrize("where", ["inside", "around"])
def test_the_same_path_on_another_host_loads(tmp_path, host, where):
    """A remote mirror host's `path` is a place on that host, not this one."""
    state, root = shape(tmp_path, where)
    cfg = load(config(tmp_path, state, RSYNC.format(host=host, path=root)))
    assert str(cfg.mirrord.state_dir) == state


def test_a_default_state_dir_inside_a_target_is_refused(tmp_path):
    """No [mirrord] section: state_dir is ./state beside the file, inside a target
    rooted at the config's directory."""
    (tmp_path / "src").mkdir()
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", f"[source:up]\npath = {tmp_path / 'src'}\ntargets = t\n"
                 f"[target:t]\ntype = rsync\nhost = 127.0.0.1\npath = {tmp_path / 'conf'}\n")
    found = problems(path)
    assert has(found, "mirrord", "state_dir", "is inside [target:t] path"), found


@pytest.mark.parametrize("kind", ["local", "127.0.0.1"])
@pytest.mark.parametrize("mode, key", [("flagfile", "flag"), ("symlink", "link")])
@pytest.mark.parametrize("where", ["inside", "around"])
def test_a_failover_link_or_flag_overlapping_a_target_is_refused(tmp_path, kind, mode, key,
                                                                   where):
    """A flip writes the flag (replaces the link); inside a target's root the next
    reconcile deletes it, undoing the flip; a target rooted at it writes over it."""
    root = tmp_path / "root"
    root.mkdir()
    own = root / "readonly.flag" if where == "inside" else root
    target = root if where == "inside" else root / "sub"
    spec = LOCAL.format(path=target) if kind == "local" else RSYNC.format(host=kind,
                                                                         path=target)
    other = tmp_path / "app" / "elsewhere"
    fo = FAILOVER.format(mode=mode, tmp=tmp_path, link=own if key == "link" else other,
                         flag=own if key == "flag" else other)
    found = problems(config(tmp_path, str(tmp_path / "state"), spec, fo))
    assert has(found, "failover", key, "[target:t] path"), found


def test_a_failover_link_and_flag_apart_from_targets_load(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    fo = FAILOVER.format(mode="symlink", tmp=tmp_path, link=tmp_path / "app" / "current",
                         flag=root / "unused.flag")   # flag unused with mode symlink
    cfg = load(config(tmp_path, str(tmp_path / "state"), LOCAL.format(path=root), fo))
    assert cfg.failover.mode == "symlink"


def test_a_name_the_hosts_file_maps_to_this_machine_is_loopback(tmp_path):
    """hosts(5) only, no DNS at load: a breaker's `vm` (127.0.0.1 in /etc/hosts) passed."""
    from mirrord.config.hostplaces import loopback
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.1.1 mirror-box mirror-box.lan # here\n"
                     "192.0.2.7 elsewhere\n::1 ip6-localhost\n")
    for name in ("mirror-box", "MIRROR-BOX.lan.", "ip6-localhost"):
        assert loopback(name, hosts_file=str(hosts)), name
    for name in ("elsewhere", "other", "192.0.2.7"):
        assert not loopback(name, hosts_file=str(hosts)), name
    assert not loopback("mirror-box", hosts_file=str(tmp_path / "missing"))
