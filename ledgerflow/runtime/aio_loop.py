"""`AsyncLoop`: the one event loop of a worker process on which async runs execute.

An async workflow's run is a coroutine on this loop, not a thread: thousands can be
executing or waiting on async I/O at once. The loop thread starts with the first async
run (a process that runs only sync workflows never starts it). Beside the loop:

- `io(fn, *args)`: store I/O of async runs (the same synchronous store the sync path
  uses), handed to a small pool of threads so that no transaction blocks the loop;
- `threads`: where the sync steps (and sync compensators) of async workflows run.

`run(coro)` runs a coroutine on the loop and blocks the calling thread until it ends
(`run_due`, `tick`, tests); `start(coro, done)` runs it without waiting (worker
threads, while a `Worker` `serve`s), at most `limit` at once: beyond that, `start`
blocks the caller until a run ends. `drain(timeout)` waits until none is executing
(a stopping worker, after each run gave itself back at its next step).

Interface: `Runtime.aio` holds one; `runtime.aio_session` runs sessions on it; `Worker`
calls `serve` / `unserve` and `drain`. Nothing here knows runs or the store.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class AsyncLoop:
    """One event loop in a thread of its own, with the thread pools async runs use."""

    def __init__(self, io_threads: int = 8, step_threads: int = 64,
                 limit: int = 10_000) -> None:
        if io_threads < 1 or step_threads < 1 or limit < 1:
            raise ValueError("io_threads, step_threads and limit must be at least 1")
        self.limit = limit
        self.io_pool = ThreadPoolExecutor(io_threads, thread_name_prefix="ledgerflow-aio-io")
        self.threads = ThreadPoolExecutor(step_threads,
                                          thread_name_prefix="ledgerflow-aio-step")
        self._lock = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._active = 0
        self._serving = 0

    # ------------------------------------------------------------------ the loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (started on first use)."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever,
                                                name="ledgerflow-aio-loop", daemon=True)
                self._thread.start()
            return self._loop

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` (blocking: store I/O) in the I/O pool, awaited on the loop."""
        return await asyncio.get_running_loop().run_in_executor(self.io_pool, fn, *args)

    # ------------------------------------------------------------------ runs

    @property
    def serving(self) -> bool:
        """Whether a `Worker` serves this loop: its threads start runs without waiting."""
        with self._lock:
            return self._serving > 0

    def serve(self) -> None:
        with self._lock:
            self._serving += 1

    def unserve(self) -> None:
        with self._lock:
            self._serving = max(self._serving - 1, 0)

    @property
    def active(self) -> int:
        """How many coroutines started here are executing."""
        with self._lock:
            return self._active

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop; block this thread until it ends; its result."""
        return self._submit(coro).result()

    def start(self, coro: Coroutine[Any, Any, T],
              done: Callable[[Future[T]], None] | None = None) -> Future[T]:
        """Run `coro` on the loop without waiting (`done(future)` once it ends); blocks
        only while `limit` runs are executing already."""
        future = self._submit(coro)
        if done is not None:
            future.add_done_callback(done)
        return future

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        loop = self.loop
        with self._lock:
            while self._active >= self.limit:
                self._lock.wait(1.0)
            self._active += 1
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        future.add_done_callback(self._ended)
        return future

    def _ended(self, _future: Future[Any]) -> None:
        with self._lock:
            self._active -= 1
            self._lock.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no run started here is executing (True), or `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        """Stop the loop and the pools (runs still executing are abandoned)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5.0)
        self.io_pool.shutdown(wait=False)
        self.threads.shutdown(wait=False)
