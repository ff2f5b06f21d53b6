"""Exclude patterns: gitignore syntax, compiled once, matched against relative paths.

Operators write excludes the way rsync and .gitignore read them, so the syntax
is gitignore's (https://git-scm.com/docs/gitignore, "PATTERN FORMAT"), matched
by pathspec's GitIgnoreSpec rather than by hand-written fnmatch rules:

- a pattern without a `/` (other than a trailing one) matches a name at any
  depth: `*.tmp`, `.nfs*`, `cache`;
- a trailing `/` matches directories only: `thumb/`, `lockdir/`;
- a leading or middle `/` anchors at the source root: `/temp`, `cache/*.jpg`;
- `**` crosses directories: `**/cache/`, `a/**/b`;
- `!` re-includes what an earlier pattern excluded, except below an excluded
  directory (gitignore: "It is not possible to re-include a file if a parent
  directory of that file is excluded"; mirrord never descends into one either).

A path is excluded when one of its ancestor directories is, or when the path
itself is. Callers that know a path is a directory say so (`is_dir=True`):
a directory-only pattern cannot match a path whose kind is not given.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

# The temp file `mirrord undelete --to-source` writes a restored version into before it
# renames it over the path (mirrord.trash.restore): never part of a source, whatever its
# excludes, so it is neither shipped nor deleted nor counted by the mass-change alarm (a
# breaker: each restore during a hold added a held delete of a name no target ever held,
# and counted three times toward the alarm); the rename into place reads as a write of
# the path (a move from an excluded name), one overwrite when a target holds the path.
RESTORE_TEMP_PREFIX = ".mirrord-undelete-"


def restore_temp(relpath: str, is_dir: bool = False) -> bool:
    """Whether `relpath` ('a/b', relative to a source root) names a restore's temp file."""
    return not is_dir and relpath.rpartition("/")[2].startswith(RESTORE_TEMP_PREFIX)


# Directory verdicts remembered per matcher: a walk or a burst of events asks
# about the same few parent directories over and over.
_DIR_CACHE_SIZE = 4096


def _spec_class() -> type[GitIgnoreSpec]:
    """pathspec's GitIgnoreSpec, imported on first use: a source without excludes never
    needs it, and its import (about 20 ms here) would delay the daemon's first watch
    (issue 18: time to watching)."""
    from pathspec import GitIgnoreSpec
    return GitIgnoreSpec


def _compile(patterns: Iterable[str]) -> GitIgnoreSpec:
    """pathspec's GitIgnoreSpec of `patterns`, without the FutureWarning re prints for a
    pattern such as `[[a]` ("Possible nested set"): a valid pattern whose meaning Python may
    change one day, not the operator's business on every command (a review, helper-144)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _spec_class().from_lines(patterns)


class PatternError(ValueError):
    """An exclude pattern that pathspec refuses or that could match nothing."""


def check_pattern(pattern: str) -> None:
    """Raise PatternError (naming the pattern) when it is invalid or a no-op.

    pathspec raises ValueError for some invalid patterns (`!` alone, a lone
    trailing backslash), re.error for a reversed range (`[z-a]`), and silently
    discards others as Git does (an unclosed `[`, `/` alone, a `#` comment):
    those would exclude nothing while looking as if they did, so they are
    refused too.
    """
    try:
        spec = _compile([pattern])
    except (ValueError, re.error, OverflowError) as exc:
        raise PatternError(f"invalid pattern {pattern!r}: {exc}") from None
    except RecursionError:
        raise PatternError(f"invalid pattern {pattern[:40]!r}...: nested too deeply") from None
    if not spec.patterns or spec.patterns[0].include is None:
        raise PatternError(f"pattern {pattern!r} matches nothing (an unclosed '[', a bare '/' "
                           f"or a '#' comment); escape a literal with '\\'")


class ExcludeMatcher:
    """A compiled exclude list; `excluded(relpath, is_dir=...)` is the question callers ask."""

    def __init__(self, patterns: tuple[str, ...]):
        """Compile `patterns` (gitignore syntax, in order; later ones win).

        Raises PatternError for the first pattern pathspec refuses.
        """
        for pattern in patterns:
            check_pattern(pattern)
        self.patterns = patterns
        self._spec = _compile(patterns) if patterns else None
        self._dir_excluded = lru_cache(maxsize=_DIR_CACHE_SIZE)(self._dir_excluded_uncached)

    @property
    def path_dependent(self) -> bool:
        """True when a pattern depends on more than a name: a '/' inside it (`cache/*.jpg`,
        `/temp`, `a/**/b`). Renaming a directory can then change what is excluded below
        it, so a directory move cannot be replayed as a move on the targets."""
        return any("/" in p.lstrip("!").rstrip("/") for p in self.patterns)

    def excluded(self, relpath: str, *, is_dir: bool = False) -> bool:
        """True when `relpath` ('a/b/c.jpg', relative to the source root, no leading
        or trailing '/') or one of its ancestor directories is excluded.

        `is_dir` says that `relpath` itself is a directory; only then can a
        directory-only pattern (`thumb/`) match the path itself. Ancestors are
        directories by definition, so `thumb/a.jpg` is excluded either way.
        """
        if self._spec is None:
            return False
        parent, sep, _name = relpath.rpartition("/")
        if sep and self._dir_excluded(parent):
            return True
        return self._spec.match_file(relpath + "/" if is_dir else relpath)

    def _dir_excluded_uncached(self, relpath: str) -> bool:
        # The trailing '/' is how pathspec is told the path is a directory.
        parent, sep, _name = relpath.rpartition("/")
        if sep and self._dir_excluded(parent):
            return True
        return self._spec.match_file(relpath + "/")


def excluded_entry(excluded: Callable[[str], bool], relpath: str, is_dir: bool) -> bool:
    """Ask an `excluded(relpath)` callable about a path, saying whether it is a directory.

    A directory is also asked as 'relpath/' (the trailing '/' is how a directory is
    spelled in every listing mirrord merges, and what gitignore's directory-only
    patterns match: `thumb/`). Any callable works: one that does not know the
    convention is asked the plain path too."""
    return excluded(relpath) or (is_dir and excluded(relpath + "/"))


@lru_cache(maxsize=64)
def compile_excludes(patterns: tuple[str, ...]) -> ExcludeMatcher:
    """One shared matcher per distinct pattern list (config reloads, tests)."""
    return ExcludeMatcher(patterns)
