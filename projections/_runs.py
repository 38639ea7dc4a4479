"""The `run_views` projection: one row per run, plus `run_tags` for the tag filter.

Every column of a row comes from the run's own stream: RunCreated fills the row
(lineage and priority included); lifecycle events set status, result, error and the
waitpoint (RunFailed also the outcome of its rollback, `compensation`); ChildStarted
(on the parent's stream) appends to `children`; every event sets `updated_at`
and `version`; a terminal event adds the run to `run_status_counts`
(`projections._counts`). Events of other types only move `updated_at` and `version`.

Writing: the events of a call are folded per run into a patch (column -> last
value). A run created in this call is INSERTed whole; any other run gets one
UPDATE of the columns its patch set, and patches with the same columns share
one executemany — an inline append is typically one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Table
from sqlalchemy.engine import Connection

from ledgerflow.domain import events as ev
from ledgerflow.eventstore.backend import Backend, Batch
from ledgerflow.eventstore.database import backend_for
from ledgerflow.eventstore.records import RecordedEvent
from ledgerflow.projections._base import BatchProjection, Tables
from ledgerflow.projections._counts import FINISHED, count_batches
from ledgerflow.projections._schema import run_status_counts, run_tags, run_views

Row = dict[str, Any]


class _Patch:
    __slots__ = ("children", "created", "row", "tags")

    def __init__(self) -> None:
        self.created = False
        self.row: Row = {}
        self.children: list[str] = []
        self.tags: list[str] = []


_CLEAR_WAIT: Row = {"waitpoint": None, "wake_at": None, "timeout_at": None}


def _created(p: _Patch, e: ev.RunCreated, r: RecordedEvent) -> None:
    p.created = True
    p.tags = list(dict.fromkeys(e.tags))
    p.row.update(
        workflow_id=e.workflow_id, workflow_version=e.workflow_version, status="pending",
        input=e.input, result=None, error=None, waitpoint=None, wake_at=e.not_before,
        timeout_at=None, parent_run_id=e.parent_run_id, parent_step_id=e.parent_step_id,
        tenant_id=_tenant_id(e.tenant_meta), tenant_meta=dict(e.tenant_meta),
        tags=list(e.tags), created_at=r.recorded_at, resumed_from=e.resumed_from,
        rerun_of=e.rerun_of, compensation=None, queue=e.queue, priority=e.priority,
    )


def _tenant_id(meta: dict[str, Any]) -> str | None:
    tenant = meta.get("tenantId")
    return None if tenant is None else str(tenant)


def _suspended(p: _Patch, e: ev.RunSuspended, r: RecordedEvent) -> None:
    wp = e.waitpoint
    p.row.update(status="suspended", waitpoint=wp.model_dump(mode="json"),
                 wake_at=wp.wake_at, timeout_at=wp.timeout_at)


def _status(status: str, **extra: Callable[[Any], Any]) -> Callable[[_Patch, Any, Any], None]:
    def handle(p: _Patch, e: Any, r: RecordedEvent) -> None:
        p.row.update(_CLEAR_WAIT)
        p.row["status"] = status
        for column, get in extra.items():
            p.row[column] = get(e)

    return handle


def _dump_error(e: Any) -> Any:
    return e.error.model_dump(mode="json")


COMPENSATION = {"none": None, "completed": "compensated", "partial": "compensation_failed"}
"""A failed run's `compensation` on the record, from its RunFailed's."""


def _compensation(e: ev.RunFailed) -> str | None:
    return COMPENSATION[e.compensation]


def _input(p: _Patch, e: ev.RunInputReplaced, r: RecordedEvent) -> None:
    p.row["input"] = e.input


def _child(p: _Patch, e: ev.ChildStarted, r: RecordedEvent) -> None:
    p.children.append(e.child_run_id)


_HANDLERS: dict[type[ev.Event], Callable[[_Patch, Any, RecordedEvent], None]] = {
    ev.RunCreated: _created,
    ev.RunStarted: _status("running"),
    ev.RunSuspended: _suspended,
    ev.RunWoken: _status("running"),
    ev.RunCompleted: _status("completed", result=lambda e: e.result),
    ev.RunCompensating: _status("compensating", error=_dump_error),
    ev.RunFailed: _status("failed", error=_dump_error, compensation=_compensation),
    ev.RunCanceled: _status("canceled"),
    ev.ChildStarted: _child,
    ev.RunInputReplaced: _input,
}


def fold(events: Sequence[RecordedEvent]) -> dict[str, _Patch]:
    """Fold events per run into patches (insertion order = first event's order)."""
    patches: dict[str, _Patch] = {}
    handlers = _HANDLERS
    for recorded in events:
        patch = patches.get(recorded.stream_id)
        if patch is None:
            patch = patches[recorded.stream_id] = _Patch()
        handler = handlers.get(type(recorded.event))
        if handler is not None:
            handler(patch, recorded.event, recorded)
        row = patch.row
        row["updated_at"] = recorded.recorded_at
        row["version"] = recorded.version
    return patches


class RunViews(BatchProjection):
    """The run views projection (tables `run_views`, `run_tags`)."""

    name = "run_views"
    version = 2  # 2: lineage, compensation, queue and priority (projections migration 2)
    tables = (run_views, run_tags, run_status_counts)

    def batches(self, conn: Connection, events: Sequence[RecordedEvent],
                tables: Tables) -> list[Batch]:
        """What `apply` executes, in order: (statement, rows) pairs."""
        views, tags = tables["run_views"], tables["run_tags"]
        inserts: list[Row] = []
        tag_rows: list[Row] = []
        updates: dict[tuple[tuple[str, ...], int], list[Row]] = {}
        finished: list[tuple[str, str]] = []
        for run_id, patch in fold(events).items():
            if patch.row.get("status") in FINISHED:  # reached once per run: counted once
                finished.append((run_id, patch.row["status"]))
            if patch.created:
                inserts.append({**patch.row, "run_id": run_id, "children": patch.children})
                created = patch.row["created_at"]
                tag_rows.extend({"run_id": run_id, "tag": tag, "created_at": created}
                                for tag in patch.tags)
                continue
            params = {f"p_{name}": value for name, value in patch.row.items()}
            params["p_run_id"] = run_id
            for index, child in enumerate(patch.children):
                params[f"p_child{index}"] = child
            updates.setdefault((tuple(sorted(patch.row)), len(patch.children)),
                               []).append(params)
        batches: list[Batch] = []
        if inserts:
            batches.append((self._statements.get(("insert", views.name), views.insert),
                            inserts))
        if tag_rows:
            batches.append((self._statements.get(("insert", tags.name), tags.insert),
                            tag_rows))
        backend = backend_for(conn)
        for (columns, children), params_list in updates.items():
            key = ("update", backend, views.name, columns, children)
            batches.append((self._statements.get(
                key, partial(_update, views, backend, columns, children)), params_list))
        batches.extend(count_batches(backend, tables["run_status_counts"], finished))
        return batches

    # The run views hold no positions: the same rows whether positions are known or not.
    staged_batches = batches


def _update(table: Table, backend: Backend, columns: tuple[str, ...], children: int) -> Any:
    values: dict[str, Any] = {name: sa.bindparam(f"p_{name}", type_=table.c[name].type)
                              for name in columns}
    if children:  # `children` with the bound child ids appended, in order
        values["children"] = backend.json_append(table.c.children, [
            sa.bindparam(f"p_child{i}", type_=sa.String()) for i in range(children)])
    return (sa.update(table).where(table.c.run_id == sa.bindparam("p_run_id"))
            .values(values))
