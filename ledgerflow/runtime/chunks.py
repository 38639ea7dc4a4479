"""Run streams: chunks of output a run appends as it goes (`StreamChunk` events), for
token-by-token output of an LLM step or the progress of a long one.

Two emitters, two write paths:

- The workflow's code calls `ctx.stream(name, chunk)` (`Streams.stream`). The chunk is
  an op of the journal (op id `$stream:{name}`, `#n` for the n-th): it is buffered
  with the run's other facts and written by the next transaction the run needs anyway
  (before the next step, or with the decision that ends the execution), and a replay
  meets it journaled and does not emit it again.
- A step's code calls `current_step().stream(name, chunk)`. The chunk is appended at
  once, in a transaction of its own, from the attempt's thread (`ChunkWriter`), so a
  reader sees it while the step still runs. It is not an op (the step may stream any
  number of chunks); it carries `(step_id, attempt, seq)`. An attempt that runs again
  after a crash has the same attempt number: it skips the chunks its predecessor wrote
  (`seq` up to what the journal holds). A retry is the next attempt and streams its
  own chunks; a reader tells them apart by `attempt` (a UI shows the last attempt's).

The executing session merges step chunks like other input events (`INPUT_EVENTS`):
they change no decision, so its next write retries on top of them without replaying
the workflow function. A chunk for a run that has ended meanwhile is dropped (logged).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import ConcurrencyError
from ledgerflow.eventstore.records import NewEvent, StreamAppend
from ledgerflow.runtime.cursor import OpCursor
from ledgerflow.runtime.failures import json_roundtrip
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import Journal

log = logging.getLogger("ledgerflow.executor")


class Streams(OpCursor):
    """`ctx.stream`: the workflow-level emitter (a base of `Context`)."""

    def stream(self, name: str, chunk: Any) -> None:
        """Append `chunk` (any JSON value) to the run's stream `name`; journaled, so a
        replay does not emit it again. Written with the run's next write (before the
        next step, or when the execution parks or ends)."""
        op = self._op(f"$stream:{name}")
        self._enter(op, "ctx.stream()")
        if op in self._j.streamed:
            return
        data = json_roundtrip(chunk, f"the chunk of stream {name!r}")
        self._record(ev.StreamChunk(name=name, chunk=data, op=op))


ChunkSink = Callable[[str, int, str, Any], None]
"""Takes (step id, attempt, stream name, chunk) from a step attempt's code."""


class ChunkWriter:
    """Appends the chunks the step attempts of one executing run stream, each at once.

    `committed()` gives the stream version the run's session has written up to: the
    expected version of the next append (a conflict reads what was added since)."""

    def __init__(self, rt: Runtime, journal: Journal, committed: Callable[[], int]) -> None:
        self._rt, self._run_id = rt, journal.run_id
        self._meta = dict(journal.base_metadata)
        self._written = dict(journal.step_chunks)  # (step, attempt) -> chunks stored
        self._emitted: dict[tuple[str, int], int] = {}
        self._committed = committed
        self._version = 0
        self._lock = threading.Lock()

    def __call__(self, step_id: str, attempt: int, name: str, chunk: Any) -> None:
        data = json_roundtrip(chunk, f"the chunk of stream {name!r}")
        with self._lock:
            key = (step_id, attempt)
            seq = self._emitted[key] = self._emitted.get(key, 0) + 1
            self._put(ev.StreamChunk(name=name, chunk=data, step_id=step_id,
                                     attempt=attempt, seq=seq))

    def put(self, event: ev.StreamChunk) -> None:
        """Append a step's chunk numbered elsewhere (`seq` set: a workflow handler's,
        see `remote`), unless it is written already."""
        with self._lock:
            self._put(event)

    def written(self, step_id: str, attempt: int) -> int:
        """How many chunks of that attempt the store holds (as far as this writer knows)."""
        with self._lock:
            return self._written.get((step_id, attempt), 0)

    def _put(self, event: ev.StreamChunk) -> None:
        assert event.step_id is not None and event.attempt is not None
        key = (event.step_id, event.attempt)
        if event.seq <= self._written.get(key, 0):
            return  # written by this attempt's run before a crash
        if self._append(event):
            self._written[key] = event.seq

    def _append(self, event: ev.StreamChunk) -> bool:
        version = max(self._version, self._committed())
        for _ in range(50):
            try:
                with self._rt.store.transaction() as tx:
                    tx.append(StreamAppend(self._run_id, [NewEvent(event, metadata=self._meta)],
                                           version))
            except ConcurrencyError:
                later = self._rt.store.read_stream(self._run_id, version + 1)
                if any(isinstance(r.event, ev.TERMINAL_EVENTS) for r in later):
                    log.warning("run %s has ended: dropping a chunk of stream %r", self._run_id,
                                event.name, extra={"run_id": self._run_id})
                    return False
                version = later[-1].version if later else version
                continue
            self._version = version + 1
            return True
        raise ConcurrencyError(self._run_id, version, -1)
