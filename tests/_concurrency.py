"""Running one callable in several threads at once, for races the tests provoke."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def at_once(work: Callable[[], T], threads: int) -> list[T | Exception]:
    """Start `work` in `threads` threads released together by a barrier; wait for all.
    Returns what each returned, or the exception it raised, in finishing order."""
    barrier = threading.Barrier(threads)
    results: list[T | Exception] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            result: T | Exception = work()
        except Exception as error:
            result = error
        with lock:
            results.append(result)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return results
