"""Reusing a run id or a trigger key is idempotent only for the same request: the same
workflow and input return the existing run; anything else is a `RunConflict` naming
the run, and nothing is appended (both backends). Before, a reused run id with other
input silently returned the existing run and dropped the new input."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerflow import Engine, IdempotencyConflict, RunConflict, WorkflowRegistry


@pytest.fixture
def two(registry: WorkflowRegistry) -> WorkflowRegistry:
    registry.register("w", lambda ctx, data: data)
    registry.register("other", lambda ctx, data: data)
    return registry


def test_a_run_id_reused_with_other_content_is_a_conflict_naming_the_run(
        engine: Engine, two: WorkflowRegistry) -> None:
    first = engine.trigger("w", {"x": 1}, run_id="order-1", tags=["a"])
    assert first.created
    same = engine.trigger("w", {"x": 1}, run_id="order-1", tags=["a"])
    assert (same.run_id, same.created) == ("order-1", False)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"input": {"x": 2}}, ["input"]), ({"workflow_id": "other"}, ["workflow"]),
             ({"tags": ["b"]}, ["tags"]), ({"tenant_meta": {"tenantId": "acme"}}, ["tenant"]),
             ({"workflow_version": "1", "input": {"x": 3}}, ["input"])]
    for change, differs in cases:
        asked: dict[str, Any] = {"workflow_id": "w", "input": {"x": 1}, "tags": ["a"],
                                 **change}
        with pytest.raises(RunConflict) as info:
            engine.trigger(asked.pop("workflow_id"), run_id="order-1", **asked)
        assert (info.value.run_id, info.value.differs) == ("order-1", differs)
        assert "run 'order-1' exists already" in str(info.value)
        assert info.value.http_status == 409 and info.value.code == "conflict"
    assert [r.type for r in engine.history("order-1")] == ["RunCreated"]


def test_a_run_id_reused_without_a_version_matches_a_run_of_an_earlier_version(
        engine: Engine, two: WorkflowRegistry) -> None:
    engine.trigger("w", 1, run_id="r")
    two.register("w", lambda ctx, data: data, version="2")
    assert not engine.trigger("w", 1, run_id="r").created  # any version: the same run
    with pytest.raises(RunConflict, match="another workflow version"):
        engine.trigger("w", 1, run_id="r", workflow_version="2")


def test_a_trigger_key_reused_with_other_content_names_its_run(
        engine: Engine, two: WorkflowRegistry) -> None:
    first = engine.trigger("w", {"x": 1}, idempotency_key="k-1")
    with pytest.raises(RunConflict) as info:
        engine.trigger("w", {"x": 2}, idempotency_key="k-1")
    assert isinstance(info.value, IdempotencyConflict)  # what callers caught before
    assert (info.value.run_id, info.value.key) == (first.run_id, "k-1")
    assert f"idempotency key 'k-1' names run {first.run_id!r}" in str(info.value)
    assert engine.trigger("w", {"x": 1}, idempotency_key="k-1").run_id == first.run_id
    assert engine.run_due().claimed == 1  # one run only
