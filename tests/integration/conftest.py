"""The watcher backend fixture: scenario tests that take `make_watcher` run once per
backend (inotify, fanotify), unchanged; see tests/watch_backends.py."""

from __future__ import annotations

import pytest

from tests.watch_backends import BACKENDS, make


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_watcher(backend):
    """make_watcher(root, excluded=None, **kw) -> a watcher of this case's backend, not
    started; every one made is closed after the test."""
    made = []

    def _make(root, excluded=None, **kw):
        made.append(make(backend, root, excluded, **kw))
        return made[-1]

    yield _make
    for w in made:
        w.close()
