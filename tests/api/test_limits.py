"""Size limits at the door: the body limit and the event limit agree (both 413, each
naming its own limit), and an event that could never be published is never written."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.outbox import DEFAULT_MAX_EVENT_BYTES
from ledgerflow.settings import Settings
from tests.api._workflows import registry
from tests.api.test_errors_auth import assert_error, event_count

ONE_MIB = 1_048_576


@pytest.fixture
def defaults(settings: Settings) -> Iterator[tuple[TestClient, Ledgerflow]]:
    """The API with the default limits: 1 MiB bodies, `DEFAULT_MAX_EVENT_BYTES` events."""
    default = Settings()
    assert (default.max_body_bytes, default.max_event_bytes) == (ONE_MIB,
                                                                 DEFAULT_MAX_EVENT_BYTES)
    lf = Ledgerflow.open(settings.model_copy(update={"max_body_bytes": ONE_MIB}),
                         registry=registry(), upgrade=False)
    try:
        with TestClient(create_app(lf)) as client:
            yield client, lf
    finally:
        lf.close()


def body_of(size: int) -> bytes:
    """A trigger body of exactly `size` bytes."""
    empty = orjson.dumps({"workflowId": "greet", "input": ""})
    return orjson.dumps({"workflowId": "greet", "input": "a" * (size - len(empty))})


def test_a_body_under_its_limit_whose_event_is_over_the_event_limit_is_413(
        defaults: tuple[TestClient, Ledgerflow]) -> None:
    client, lf = defaults
    json_headers = {"content-type": "application/json"}
    body = body_of(ONE_MIB - 10)
    refused = assert_error(client.post("/api/runs", content=body, headers=json_headers),
                           413, "event_too_large")
    assert f"over the event size limit of {DEFAULT_MAX_EVENT_BYTES} bytes" in \
        refused["message"] and "RunCreated" in refused["message"]
    details = refused["details"]
    assert details["eventType"] == "RunCreated" and details["maxBytes"] == \
        DEFAULT_MAX_EVENT_BYTES and details["bytes"] > DEFAULT_MAX_EVENT_BYTES
    too_big = assert_error(client.post("/api/runs", content=body_of(ONE_MIB + 1),
                                       headers=json_headers), 413, "payload_too_large")
    assert f"larger than {ONE_MIB} bytes" in too_big["message"]
    assert event_count(lf) == 0 and client.get("/api/runs").json()["data"] == []
    fits = client.post("/api/runs", content=body_of(DEFAULT_MAX_EVENT_BYTES - 1_000),
                       headers=json_headers)
    assert fits.status_code == 201, fits.text


def test_a_signal_over_the_event_limit_is_413_and_appends_nothing(
        lf: Ledgerflow, settings: Settings) -> None:
    small = Ledgerflow.open(settings.model_copy(update={"max_event_bytes": 2_000}),
                            registry=registry(), upgrade=False)
    try:
        with TestClient(create_app(small)) as limited:
            run_id = limited.post("/api/runs", json={"workflowId": "waiter"}).json()["id"]
            before = event_count(lf)
            refused = limited.post(f"/api/runs/{run_id}/signals",
                                   json={"name": "go", "payload": "x" * 3_000})
            assert "SignalReceived" in assert_error(refused, 413, "event_too_large")["message"]
            assert event_count(lf) == before
    finally:
        small.close()
