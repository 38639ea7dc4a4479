"""A workflow served by a real uvicorn handler process, executed by a worker here: its
history is the one an inline run writes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Ledgerflow, Settings
from ledgerflow.domain.lifecycle import RunStatus
from tests.remote import served
from tests.remote.conftest import HandlerProcess, drive


def _shape(lf: Ledgerflow, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The run's events, without what differs between any two runs (ids, times)."""
    out = []
    for rec in lf.engine.runtime.history(run_id):
        data = {k: v for k, v in rec.data.items()
                if k not in ("started_at", "worker", "value", "run_id", "due_at", "at",
                             "child_run_id", "traceback", "wake_at")}
        if isinstance(data.get("waitpoint"), dict):
            data["waitpoint"] = {k: v for k, v in data["waitpoint"].items() if k != "wake_at"}
        if isinstance(data.get("error"), dict):
            data["error"] = {k: v for k, v in data["error"].items() if k != "traceback"}
        out.append((rec.type, data))
    return out


CASES = [("booking", {"id": 7, "amount": 12}), ("saga", {"fail": True}),
         ("fanout", None), ("parent", None), ("retries", {"key": "same", "failures": 1}),
         ("doomed", None), ("asyncbook", {"sku": "s", "amount": 5})]


@pytest.mark.parametrize(("workflow", "data"), CASES, ids=[c[0] for c in CASES])
def test_remote_and_inline_histories_are_the_same(
        remote_lf: Ledgerflow, pg_url: str, workflow: str, data: Any) -> None:
    """Steps, rollback, parallel branches, a child, retries, failure: the same events
    with the same data, but for ids, times and workers."""
    inline_lf = Ledgerflow.open(Settings(database_url=pg_url), registry=served.registry,
                                upgrade=False)
    try:
        served._flaky_calls.clear()  # the inline run's flaky steps fail as the remote's
        inline = inline_lf.engine.trigger(workflow, data).run_id
        drive(inline_lf, inline)
        remote = remote_lf.engine.trigger(workflow, data).run_id
        drive(remote_lf, remote)
        assert _shape(remote_lf, remote) == _shape(inline_lf, inline)
    finally:
        inline_lf.close()


def test_a_remote_run_completes_with_the_history_of_an_inline_one(
        remote_lf: Ledgerflow, handler: HandlerProcess, pg_url: str,
        pg_engine: SAEngine) -> None:
    assert "booking" in remote_lf.engine.registry.names()  # learned from GET /workflows
    remote = remote_lf.engine.trigger("booking", {"id": 7, "amount": 12}).run_id
    state = drive(remote_lf, remote)
    assert state.status is RunStatus.COMPLETED
    assert state.result == {"seat": "seat-7", "paid": 12, "note": "ok", "when": True}
    assert [e["effect"] for e in handler.effects_seen()] == ["reserve", "charge", "confirm"]

    inline_lf = Ledgerflow.open(Settings(database_url=pg_url), registry=served.registry,
                                upgrade=False)
    try:
        inline = inline_lf.engine.trigger("booking", {"id": 7, "amount": 12}).run_id
        drive(inline_lf, inline)
        assert _shape(remote_lf, remote) == _shape(inline_lf, inline)
    finally:
        inline_lf.close()
