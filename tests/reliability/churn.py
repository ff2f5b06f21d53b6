"""Random file-system churn the way users and applications make it.

Creates, overwrites in place, write-then-rename, renames of files and of whole
directories, deletes of files and of trees, new nested directories, directories
built under a temporary name and published by a rename, permission-only and
mtime-only changes of files and directories, truncates by path. Errors
from racing another writer (a path gone under us) are part of the game and
ignored. Run as a module for separate writer processes:

    python -m tests.reliability.churn ROOT SEED SECONDS
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path

OPS = ("create", "create", "create", "overwrite", "append", "upload", "rename_file",
       "rename_dir", "mkdir", "publish", "delete", "rmtree", "chmod", "chmod_dir", "utime",
       "truncate")
FILE_MODES = (0o600, 0o640, 0o644, 0o664)
DIR_MODES = (0o700, 0o750, 0o755)


class Churn:
    def __init__(self, root: Path, seed: int, *, max_files: int = 300, max_dirs: int = 30):
        self.root = root
        self.rng = random.Random(seed)
        self.tag = f"w{seed}"
        self.max_files = max_files
        self.max_dirs = max_dirs
        self.counter = 0
        self.done: dict[str, int] = {}

    # ------------------------------------------------------------ picking
    def _dirs(self) -> list[Path]:
        out = [self.root]
        for dirpath, dirnames, _files in os.walk(self.root):
            out.extend(Path(dirpath) / d for d in dirnames)
        return out

    def _files(self) -> list[Path]:
        out = []
        for dirpath, _dirs, files in os.walk(self.root):
            out.extend(Path(dirpath) / f for f in files if not f.endswith(".tmp"))
        return out

    def _name(self, suffix: str = ".bin") -> str:
        self.counter += 1
        return f"{self.tag}-{self.counter:05d}{suffix}"

    def _data(self) -> bytes:
        size = self.rng.choice((0, 1, 100, 1000, 4096, 20000))
        return self.rng.randbytes(size)

    # ------------------------------------------------------------ operations
    def step(self) -> str:
        files, dirs = self._files(), self._dirs()
        op = self.rng.choice(OPS)
        if op in ("create", "upload") and len(files) >= self.max_files:
            op = "delete"
        if op == "mkdir" and len(dirs) >= self.max_dirs:
            op = "rmtree"
        try:
            getattr(self, f"_{op}")(files, dirs)
        except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                OSError, IndexError):
            op = f"{op}:raced"
        self.done[op] = self.done.get(op, 0) + 1
        return op

    def _create(self, files, dirs):
        (self.rng.choice(dirs) / self._name()).write_bytes(self._data())

    def _overwrite(self, files, dirs):
        self.rng.choice(files).write_bytes(self._data())

    def _append(self, files, dirs):
        with open(self.rng.choice(files), "ab") as fh:
            fh.write(self._data())

    def _upload(self, files, dirs):
        d = self.rng.choice(dirs)
        tmp = d / self._name(".tmp")
        tmp.write_bytes(self._data())
        os.rename(tmp, d / self._name(".jpg"))

    def _rename_file(self, files, dirs):
        os.rename(self.rng.choice(files), self.rng.choice(dirs) / self._name())

    def _rename_dir(self, files, dirs):
        movable = [d for d in dirs if d != self.root]
        src = self.rng.choice(movable)
        dst_parent = self.rng.choice([d for d in dirs if d != src and src not in d.parents])
        os.rename(src, dst_parent / self._name(""))

    def _mkdir(self, files, dirs):
        d = self.rng.choice(dirs) / self._name("")
        d.mkdir()
        for _ in range(self.rng.randint(0, 3)):
            (d / self._name()).write_bytes(self._data())

    def _publish(self, files, dirs):
        """Build a directory under a temporary name, then rename it into place at once."""
        parent = self.rng.choice(dirs)
        tmp = parent / self._name(".building")
        tmp.mkdir()
        for _ in range(self.rng.randint(0, 2)):
            (tmp / self._name()).write_bytes(self._data())
        os.rename(tmp, parent / self._name(""))

    def _chmod(self, files, dirs):
        os.chmod(self.rng.choice(files), self.rng.choice(FILE_MODES))

    def _chmod_dir(self, files, dirs):
        os.chmod(self.rng.choice([d for d in dirs if d != self.root]), self.rng.choice(DIR_MODES))

    def _utime(self, files, dirs):
        when = self.rng.randrange(1_000_000_000, 1_700_000_000) * 10**9 + self.rng.randrange(10**9)
        os.utime(self.rng.choice(files), ns=(when, when))

    def _truncate(self, files, dirs):
        path = self.rng.choice(files)
        os.truncate(path, self.rng.randrange(0, max(1, path.stat().st_size)))

    def _delete(self, files, dirs):
        self.rng.choice(files).unlink()

    def _rmtree(self, files, dirs):
        shutil.rmtree(self.rng.choice([d for d in dirs if d != self.root]))

    # ------------------------------------------------------------ drivers
    def run(self, *, steps: int | None = None, until: float | None = None,
            stop: threading.Event | None = None, pause: float = 0.0) -> int:
        n = 0
        while True:
            if steps is not None and n >= steps:
                break
            if until is not None and time.monotonic() >= until:
                break
            if stop is not None and stop.is_set():
                break
            self.step()
            n += 1
            if pause:
                time.sleep(self.rng.random() * pause)
        return n


def main(argv: list[str]) -> int:
    root, seed, seconds = Path(argv[0]), int(argv[1]), float(argv[2])
    churn = Churn(root, seed)
    n = churn.run(until=time.monotonic() + seconds, pause=0.01)
    print(f"{n} {churn.done}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
