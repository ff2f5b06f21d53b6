"""Merging ordered listings in step, without holding any of them whole.

Every listing mirrord compares (a source walk, a target listing, the rows of
the `shipped` table) comes sorted by the same key: the bytes of the relative
path, a directory as 'path/' (mirrord.treewalk.entry_key). A `Cursor` holds
one item of such a stream; `merge` walks two or more cursors together and
yields, key by key, what each stream holds at that key. Memory stays at one
item per stream however long the listings are.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class Cursor(Generic[T]):
    """A peekable ordered stream: `head` is the next item, `key` its sort key (None at the end)."""

    def __init__(self, items: Iterable[T], key: Callable[[T], bytes]):
        self._items = iter(items)
        self._key_of = key
        self.head: T | None = None
        self.key: bytes | None = None
        self.advance()

    def __bool__(self) -> bool:
        return self.key is not None

    def advance(self) -> T | None:
        """Move to the next item; returns the item that was at the head."""
        old = self.head
        self.head = next(self._items, None)
        self.key = None if self.head is None else self._key_of(self.head)
        return old

    def take_before(self, key: bytes) -> Iterator[T]:
        """Every item whose key sorts before `key` (consumed)."""
        while self.key is not None and self.key < key:
            yield self.advance()  # type: ignore[misc]

    def take_equal(self, key: bytes) -> T | None:
        """The head if its key is `key` (consumed), else None."""
        if self.key is not None and self.key == key:
            return self.advance()
        return None


def merge(*cursors: Cursor) -> Iterator[tuple[bytes, list]]:
    """Yield (key, [item of each cursor at that key or None]) for every key in any cursor."""
    while True:
        keys = [c.key for c in cursors if c.key is not None]
        if not keys:
            return
        key = min(keys)
        yield key, [c.take_equal(key) for c in cursors]


def below(key: bytes, prefixes: Iterable[bytes]) -> bool:
    """True when `key` is one of `prefixes` (a 'dir/' key) or lies below one of them."""
    return any(key.startswith(p) for p in prefixes)
