"""The executors a Shipper runs each target's batches on (s3transfer's pattern):
`thread_pool` in production, `serial` in tests, where every batch runs inside
submit() on the caller's thread, so the pipeline and the shipper are tested
without threads or sleeps, in one fixed order."""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Callable

ExecutorFactory = Callable[[str, int], Executor]   # (target name, workers) -> its pool


def thread_pool(target: str, workers: int) -> Executor:
    """The production executor: `workers` threads for one target."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"ship-{target}")


class SerialExecutor(Executor):
    """Runs each submitted call at once on the caller's thread (s3transfer's
    NonThreadedExecutor): tests of the shipper and the pipeline then run without
    threads or sleeps, in a fixed order, with a fake clock."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - kept on the future, like a pool does
            fut.set_exception(exc)
        return fut


def serial(target: str, workers: int) -> Executor:
    """An ExecutorFactory for SerialExecutor."""
    return SerialExecutor()
