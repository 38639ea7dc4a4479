"""Debounced triggers: triggers with the same debounce key inside the window collapse
into one run, which starts when the window closes with the last trigger's input.

Interface: `Debounce(key, seconds)` (what a trigger asks) and `trigger_debounced`
(`Engine.trigger` calls it). The window is trailing: each trigger moves the start to
`seconds` after it, so a run starts once its key has been quiet that long.

The run waiting to start carries the key in its queue row (`run_queue.debounce_key`,
unique: workflow and key). A trigger takes the key's lock (`Backend.serialize`, a
transaction lock on PostgreSQL; SQLite's write transaction holds the database), then
either appends `RunInputReplaced` (the new input) to that run and moves its due time,
or creates the run. The claim that starts the run clears its key (and skips the row
while a trigger holds it), so a trigger after the start makes a new run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import InvalidRequest
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.eventstore.records import NewEvent, StreamAppend, new_id
from ledgerflow.eventstore.store import Transaction
from ledgerflow.runtime import queue
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import Journal
from ledgerflow.runtime.streams import event_metadata


@dataclass(frozen=True)
class Debounce:
    """Collapse triggers with `key` that come less than `seconds` apart."""

    key: str
    seconds: float

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or len(self.key) > 200:
            raise InvalidRequest(f"a debounce key must be 1 to 200 characters, got {self.key!r}")
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float) \
                or not 0 < self.seconds <= 86400 * 366:
            raise InvalidRequest(
                f"debounce seconds must be positive (at most a year), got {self.seconds!r}")


def trigger_debounced(rt: Runtime, created: ev.RunCreated, first: NewEvent,
                      debounce: Debounce, actor: str | None) -> tuple[str, bool]:
    """The run `debounce` collapses this trigger into (its input replaced), or a new
    one made of `created` (its first event `first`): (run id, created)."""
    slot = json.dumps([created.workflow_id, debounce.key])
    now = rt.clock()
    due = now + timedelta(seconds=debounce.seconds)
    with rt.store.transaction() as tx:
        tx.store.backend.serialize(tx.conn, _lock_key(slot))
        q = queue.run_queue.c
        found = tx.conn.execute(sa.select(q.run_id).where(q.debounce_key == slot)).scalar()
        if found is not None and _replace(tx, str(found), created.input, actor):
            tx.conn.execute(queue.run_queue.update().where(q.run_id == found)
                            .values(due_at=due))
            return str(found), False
        run_id = new_id()
        new = created.model_copy(update={"not_before": due})
        tx.append(StreamAppend(run_id, [NewEvent(new, first.event_id, first.metadata)], 0))
        queue.enqueue(tx, run_id, new.workflow_id, new.priority, due, now,
                      queue=new.queue or "default", key=new.concurrency_key, debounce=slot)
        return run_id, True


def _replace(tx: Transaction, run_id: str, input: ev.JSON, actor: str | None) -> bool:
    """Append the new input to `run_id` if it has not started; False if it has."""
    journal = Journal.build(run_id, tx.read_stream(run_id))
    if journal.created is None or journal.state.status is not RunStatus.PENDING:
        return False
    meta = event_metadata(journal.base_metadata, journal.last_event_id, actor)
    tx.append(StreamAppend(run_id, [NewEvent(ev.RunInputReplaced(input=input), metadata=meta)],
                           journal.version))
    return True


def _lock_key(slot: str) -> int:
    """A 63-bit lock key for a debounce slot."""
    return int.from_bytes(hashlib.sha256(slot.encode()).digest()[:8], "big") >> 1
