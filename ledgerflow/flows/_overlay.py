"""A run's journal laid over its flow's graph: which nodes ran, failed, or are waiting.

See `ledgerflow.flows._graph` for the graph's shape. `overlay` takes journal entries:
`{stepId, status}` dicts (the HTTP journal's), the step journal's records (`step_id`,
`status`), or what `history_entries` derives from a run's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledgerflow.domain import events as ev
from ledgerflow.eventstore.records import RecordedEvent

_STATUS = {"completed": "ran", "ran": "ran", "failed": "failed", "retrying": "waiting",
           "suspended": "waiting", "waiting": "waiting"}
"""Journal statuses (the step journal's, and `history_entries`') -> overlay statuses."""


def _entry(entry: Any) -> tuple[str, str]:
    if isinstance(entry, dict):
        return str(entry.get("stepId", entry.get("step_id"))), str(entry.get("status"))
    return str(entry.step_id), str(entry.status)


def _node_of(step_id: str, ids: set[str]) -> str | None:
    """The node a journaled step id belongs to (a loop's `name#n`: the loop)."""
    if step_id in ids:
        return step_id
    base, sep, count = step_id.rpartition("#")
    return base if sep and count.isdigit() and base in ids else None


def _fork(branches: list[str | None]) -> str | None:
    """A parallel's status from its branches'."""
    for status in ("failed", "waiting"):
        if status in branches:
            return status
    if branches and all(s == "ran" for s in branches):
        return "ran"
    return "waiting" if "ran" in branches else None


def overlay(graph: dict[str, Any], entries: Iterable[Any]) -> dict[str, Any]:
    """A copy of `graph` whose nodes carry `status`: `ran`, `failed`, `waiting` or None
    (not reached); the last entry of a node decides."""
    ids = {node["id"] for node in graph["nodes"]}
    statuses: dict[str, str] = {}
    for entry in entries:
        step_id, journaled = _entry(entry)
        found = _node_of(step_id, ids)
        if found is not None and journaled in _STATUS:
            statuses[found] = _STATUS[journaled]
    nodes = []
    for node in graph["nodes"]:
        status = statuses.get(node["id"])
        if node["kind"] == "parallel":
            status = _fork([statuses.get(n["id"]) for n in graph["nodes"]
                            if n.get("parallel") == node["id"]])
        nodes.append({**node, "status": status})
    return {**graph, "nodes": nodes}


def history_entries(history: Iterable[RecordedEvent | ev.Event]) -> list[dict[str, str]]:
    """`{stepId, status}` per op of a run's history (statuses `ran`, `failed`,
    `waiting`), waits included: what `overlay` needs to mark sleeps, signals, children
    and agent rounds too."""
    statuses: dict[str, str] = {}
    for item in history:
        event = item.event if isinstance(item, RecordedEvent) else item
        match event:
            case ev.StepCompleted(step_id=op) | ev.TimerFired(name=op) \
                    | ev.SignalReceived(name=op):
                statuses[op] = "ran"
            case ev.StepFailed(step_id=op, final=final):
                statuses[op] = "failed" if final else "waiting"
            case ev.WaitTimedOut(name=op):
                statuses[op] = "failed"
            case ev.StepSuspended(step_id=op) | ev.ChildStarted(step_id=op):
                statuses[op] = "waiting"
            case ev.RunSuspended(waitpoint=wp):
                statuses[wp.name] = "waiting"
            case ev.ChildFinished(step_id=op, status=status):
                statuses[op] = "ran" if status == "completed" else "failed"
    return [{"stepId": op, "status": status} for op, status in statuses.items()]
