"""Targets whose places overlap are a config error naming both keys (mirrord.config.overlap).

Before, `[target:t] path = X` beside `[target:t2] path = X/inner` passed check-config, and
each reconcile of t deleted t2's whole mirror as extra (then t2 sent it all again). The
same fault for one directory spelled twice (`X` and `X/`), through a symlink, for rsync
targets on one host and port, and for S3 targets in one bucket of one endpoint with one
prefix inside the other.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mirrord.config import load
from mirrord.errors import ConfigError

MIRRORD = Path(sys.executable).with_name("mirrord")


def write(tmp_path: Path, t: dict[str, str], t2: dict[str, str]) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "tgt").mkdir(exist_ok=True)
    sections = {"mirrord": {"state_dir": str(tmp_path / "state")},
                "source:s": {"path": str(tmp_path / "src"), "targets": "t, t2"},
                "target:t": t, "target:t2": t2}
    path = tmp_path / "m.ini"
    path.write_text("".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items())
                            for s, kv in sections.items()))
    return path


def local(path: Path | str) -> dict[str, str]:
    return {"type": "local", "path": str(path)}


def rsync(path: str, host: str = "mirror.example.org", port: str = "22") -> dict[str, str]:
    return {"type": "rsync", "host": host, "port": port, "path": path}


def s3(prefix: str, bucket: str = "bkt", endpoint: str = "http://127.0.0.1:8333") -> dict[str, str]:
    return {"type": "s3", "bucket": bucket, "prefix": prefix, "endpoint_url": endpoint}


def overlap_problems(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(path)
    return [(p.section, p.key, p.message) for p in info.value.problems]


def _cases(tmp: Path) -> dict[str, tuple[dict, dict, str]]:
    """name -> (t, t2, the key of t2 named)"""
    (tmp / "link").symlink_to(tmp / "tgt")
    return {
        "inner": (local(tmp / "tgt"), local(tmp / "tgt" / "inner"), "path"),
        "outer": (local(tmp / "tgt" / "inner"), local(tmp / "tgt"), "path"),
        "same": (local(tmp / "tgt"), local(tmp / "tgt"), "path"),
        "trailing slash": (local(tmp / "tgt"), local(f"{tmp / 'tgt'}/"), "path"),
        "dot segment": (local(tmp / "tgt"), local(f"{tmp / 'tgt'}/./inner/.."), "path"),
        "symlink": (local(tmp / "tgt"), local(tmp / "link" / "inner"), "path"),
        "rsync inner": (rsync("/srv/m"), rsync("/srv/m/inner"), "path"),
        "rsync same, slashes": (rsync("/srv/m"), rsync("//srv//m/"), "path"),
        "rsync host case and dot": (rsync("/srv/m"), rsync("/srv/m/x", host="MIRROR.example.org."), "path"),
        "rsync root": (rsync("/"), rsync("/srv/m"), "path"),
        "s3 inner prefix": (s3("a"), s3("a/b"), "prefix"),
        "s3 no prefix": (s3(""), s3("a/"), "prefix"),
        "s3 same prefix": (s3("a/"), s3("a"), "prefix"),
        "s3 default port": (s3("a", endpoint="http://127.0.0.1"), s3("a/b", endpoint="http://127.0.0.1:80"), "prefix"),
        "s3 aws": (s3("a", endpoint=""), s3("a/b", endpoint=""), "prefix"),
    }


CASES = ["inner", "outer", "same", "trailing slash", "dot segment", "symlink", "rsync inner",
         "rsync same, slashes", "rsync host case and dot", "rsync root", "s3 inner prefix",
         "s3 no prefix", "s3 same prefix", "s3 default port", "s3 aws"]


@pytest.mark.parametrize("case", CASES)
def test_overlapping_targets_are_one_problem_naming_both_keys(tmp_path, case):
    t, t2, key = _cases(tmp_path)[case]
    found = overlap_problems(write(tmp_path, t, t2))
    assert len(found) == 1, found
    section, named, message = found[0]
    assert (section, named) == ("target:t2", key)
    assert f"[target:t] {key}" in message and "delete" in message


@pytest.mark.parametrize("t, t2", [
    (local("/m/a"), local("/m/ab")),                          # a sibling sharing a name's start
    (rsync("/srv/m"), rsync("/srv/m", host="other.example.org")),
    (rsync("/srv/m"), rsync("/srv/m", port="2222")),         # the port is part of the host
    (s3("a"), s3("ab")),
    (s3("a"), s3("a", bucket="other")),
    (s3("a"), s3("a", endpoint="http://127.0.0.1:9000")),
    (local("/srv/m"), rsync("/srv/m")),                        # not one store
], ids=["local siblings", "rsync other host", "rsync other port", "s3 sibling prefixes",
        "s3 other bucket", "s3 other endpoint", "local and rsync"])
def test_separate_places_still_load(tmp_path, t, t2):
    cfg = load(write(tmp_path, t, t2))
    assert set(cfg.targets) == {"t", "t2"}


def test_check_config_refuses_nested_targets_with_exit_2_and_one_line(tmp_path):
    path = write(tmp_path, local(tmp_path / "tgt"), local(tmp_path / "tgt" / "inner"))
    done = subprocess.run([str(MIRRORD), "-c", str(path), "check-config"], check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "[target:t2] path" in lines[0] and "[target:t] path" in lines[0]
    assert "Traceback" not in done.stderr
