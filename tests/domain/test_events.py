"""Events: frozen, registered by name, decoded with upcasting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import InvalidEvent, UnknownEventType


def test_events_are_frozen() -> None:
    event = ev.RunCompleted(result={"a": 1})
    with pytest.raises(ValidationError):
        event.result = 2  # type: ignore[misc]


def test_encode_decode_round_trip_every_registered_type() -> None:
    event = ev.StepFailed(step_id="charge", attempt=2, final=True,
                          error=ev.ErrorInfo(type="Declined", message="card declined"))
    assert ev.decode(*ev.encode(event)) == event
    assert ev.EVENT_TYPES["StepFailed"] is ev.StepFailed
    for name, cls in ev.EVENT_TYPES.items():
        assert cls.type_name() == name


def test_run_created_v1_is_upcast_to_v2() -> None:
    stored_v1 = {"workflow_id": "checkout", "workflow_version": "1", "tenant": "acme"}
    event = ev.decode("RunCreated", 1, stored_v1)
    assert isinstance(event, ev.RunCreated)
    assert event.tenant_meta == {"tenantId": "acme"}
    bare = ev.decode("RunCreated", 1, {"workflow_id": "w", "workflow_version": "1"})
    assert isinstance(bare, ev.RunCreated) and bare.tenant_meta == {}


def test_unknown_type_and_future_version_are_clear_errors() -> None:
    with pytest.raises(UnknownEventType, match="NoSuchEvent"):
        ev.decode("NoSuchEvent", 1, {})
    with pytest.raises(InvalidEvent, match="newer than this code"):
        ev.decode("RunStarted", 9, {})
    with pytest.raises(InvalidEvent, match="does not validate"):
        ev.decode("StepCompleted", 1, {"result": 1})
