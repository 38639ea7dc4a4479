"""Writing runs that other runs cause: a child created in its parent's park
transaction, a parent told (and woken) in its child's terminal transaction, the
first events of an eagerly started run, and what a trigger that names an existing
run must share with it: the fingerprint its idempotency key binds (the key itself
is an `eventstore.idempotency` key) and, for a given run id, `differences`.

Each function writes inside the caller's `Transaction`; none commits.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ledgerflow.domain import events as ev
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.domain.metadata import run_metadata
from ledgerflow.domain.state import Begin, Wake, decide
from ledgerflow.eventstore.records import NewEvent, StreamAppend
from ledgerflow.eventstore.store import Transaction
from ledgerflow.runtime import queue
from ledgerflow.runtime.context import ChildSpec
from ledgerflow.runtime.host import Runtime
from ledgerflow.runtime.journal import Journal, base_metadata
from ledgerflow.runtime.listen import announce
from ledgerflow.runtime.streams import event_metadata


def fingerprint(created: ev.RunCreated) -> str:
    """What an idempotency key binds: the same key with other content is a conflict."""
    return hashlib.sha256(json.dumps(
        [created.workflow_id, created.workflow_version, created.input, created.tenant_meta,
         created.tags], sort_keys=True).encode()).hexdigest()


_COMPARED = {"workflow_id": "workflow", "workflow_version": "workflow version",
             "input": "input", "tenant_meta": "tenant", "tags": "tags",
             "parent_run_id": "parent", "rerun_of": "rerun lineage",
             "resumed_from": "resume lineage"}


def differences(existing: ev.RunCreated, created: ev.RunCreated, *,
                any_version: bool = False) -> list[str]:
    """What a trigger asks (`created`) that the run it names was not created with, in
    words ("input", "tags", ...); empty: it is the same run. `any_version`: the trigger
    did not name a version (the run may have started on an earlier one)."""
    return [words for name, words in _COMPARED.items()
            if getattr(existing, name) != getattr(created, name)
            and not (any_version and name == "workflow_version")]


def start_events(rt: Runtime, run_id: str, created: ev.RunCreated,
                 first: NewEvent) -> list[NewEvent]:
    """What a claim would append (RunStarted), caused by the RunCreated `first`."""
    journal = Journal.build(run_id, ())
    journal.add(created)
    meta = event_metadata(base_metadata(first.metadata), first.event_id)
    return [NewEvent(e, metadata=meta)
            for e in decide(journal.state, Begin(worker=rt.worker_id))]


def create_child(rt: Runtime, tx: Transaction, parent: Journal, spec: ChildSpec) -> None:
    """Create a child run in the transaction that parks its parent."""
    definition = rt.registry.get(spec.workflow_id)
    pstate, pcreated = parent.state, parent.created
    created = ev.RunCreated(
        workflow_id=definition.name, workflow_version=definition.version, input=spec.input,
        tenant_meta=dict(pstate.tenant_meta), parent_run_id=parent.run_id,
        parent_step_id=spec.step_id, priority=pcreated.priority if pcreated else 0,
        queue=rt.queue_of(definition.queue))
    meta = run_metadata(definition.name, definition.version,
                        pstate.tenant_meta.get("tenantId"),
                        correlation_id=parent.base_metadata.get("correlation_id",
                                                                parent.run_id),
                        causation_id=parent.last_event_id,
                        traceparent=rt.observer.child_traceparent(
                            pstate.workflow_id, parent.run_id, spec.step_id))
    now = rt.clock()
    tx.append_deferred(StreamAppend(spec.run_id, [NewEvent(created, metadata=meta)], 0))
    queue.enqueue(tx, spec.run_id, definition.name, created.priority, now, now,
                  queue=definition.queue)


def notify_parent(rt: Runtime, tx: Transaction, child: Journal, status: str, result: Any,
                  error: ev.ErrorInfo | None) -> None:
    """In the child's terminal transaction: tell the parent (and wake it if waiting)."""
    created = child.created
    if created is None or created.parent_run_id is None:
        return
    parent_id, step_id = created.parent_run_id, created.parent_step_id or ""
    parent = Journal.build(parent_id, tx.read_stream(parent_id))
    if parent.created is None or parent.state.is_terminal:
        return
    events: list[ev.Event] = [ev.ChildFinished(step_id=step_id, child_run_id=child.run_id,
                                               status=status, result=result, error=error)]
    wp = parent.state.waitpoint
    if parent.state.status is RunStatus.SUSPENDED and wp is not None \
            and wp.kind == "child" and wp.name == step_id:
        events += decide(parent.state, Wake(reason="child", name=step_id))
        queue.wake(tx, parent_id, rt.clock())
        announce(tx, rt.worker_id)
    meta = event_metadata(parent.base_metadata, child.last_event_id)
    tx.append_deferred(StreamAppend(parent_id, [NewEvent(e, metadata=meta) for e in events],
                                    parent.version))
