"""A trigger of a workflow served elsewhere checks its input at the handler (`POST
{url}/check`): a bad input is refused with pydantic's errors and nothing is appended;
a handler that cannot answer leaves the check to the run's execution."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import Ledgerflow
from ledgerflow.domain.errors import InvalidInput
from ledgerflow.domain.lifecycle import RunStatus
from tests.remote.conftest import HandlerProcess, drive, open_remote


def _runs(lf: Ledgerflow) -> int:
    """Events in the store (a refused trigger appends none)."""
    import sqlalchemy as sa
    with lf.db.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def test_a_bad_input_is_refused_at_trigger_and_nothing_is_appended(
        remote_lf: Ledgerflow) -> None:
    before = _runs(remote_lf)
    with pytest.raises(InvalidInput) as refused:
        remote_lf.engine.trigger("typed-order", {"id": "seven", "amount": 1})
    assert [e["loc"] for e in refused.value.errors] == [["input", "id"]]
    assert "typed-order@1" in str(refused.value) and "nothing was appended" in str(refused.value)
    assert _runs(remote_lf) == before
    good = remote_lf.engine.trigger("typed-order", {"id": 7, "amount": 2.5}).run_id
    state = drive(remote_lf, good)
    assert state.status is RunStatus.COMPLETED and state.result == {"id": 7, "amount": 2.5}


def test_a_bad_input_over_http_is_a_422_naming_the_field(remote_lf: Ledgerflow) -> None:
    from fastapi.testclient import TestClient

    from ledgerflow.api import create_app
    with TestClient(create_app(remote_lf)) as client:
        answer = client.post("/api/runs", json={"workflowId": "typed-order",
                                                "input": {"id": 1}})
    assert answer.status_code == 422, answer.text
    assert "input.amount" in answer.text


def test_a_handler_that_cannot_answer_leaves_the_check_to_the_run(
        pg_engine: SAEngine, pg_url: str, own_handler: HandlerProcess,
        caplog: pytest.LogCaptureFixture) -> None:
    lf = open_remote(pg_url, own_handler.url)
    try:
        own_handler.stop()
        run_id = lf.engine.trigger("typed-order", {"id": "seven", "amount": 1}).run_id
        assert "is not checked at trigger" in caplog.text
        own_handler.start()  # the run's execution checks it: the run fails
        state = drive(lf, run_id)
    finally:
        lf.close()
    assert state.status is RunStatus.FAILED
    assert state.error is not None and "id" in state.error.message
