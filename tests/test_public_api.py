"""What users import from `ledgerflow` is there, and serving the API needs nothing more."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import ledgerflow
import ledgerflow.api

CAUGHT_ERRORS = ["ConcurrencyError", "IllegalTransition", "UnknownRun", "UnknownWorkflow",
                 "InvalidRequest", "IdempotencyConflict", "NotAwaited", "NonDeterminismError",
                 "StepFailed", "WaitTimeout", "ChildFailed", "RerunNotConfirmed",
                 "StepCanceled", "AsyncMisuse"]


@pytest.mark.parametrize("module", ["ledgerflow", "ledgerflow.api", "ledgerflow.testing",
                                    "ledgerflow.client"])
def test_every_exported_name_imports(module: str) -> None:
    mod = importlib.import_module(module)
    exported = mod.__all__
    assert len(set(exported)) == len(exported), "a name is exported twice"
    for name in exported:
        assert getattr(mod, name) is not None, f"{module}.{name}"
    namespace: dict[str, object] = {}
    exec(f"from {module} import *", namespace)  # the star import some users write
    assert set(exported) <= set(namespace)


@pytest.mark.parametrize("name", CAUGHT_ERRORS)
def test_the_errors_users_catch_are_exported(name: str) -> None:
    assert name in ledgerflow.__all__
    error = getattr(ledgerflow, name)
    assert isinstance(error, type) and issubclass(error, Exception)


def test_the_app_object_and_its_settings_are_exported() -> None:
    assert {"Ledgerflow", "Settings", "workflow", "Context", "AsyncContext", "Engine",
            "Worker"} <= set(ledgerflow.__all__)
    assert ledgerflow.Ledgerflow.open is not None


def test_the_http_api_serves_from_public_names_only(tmp_path: Path) -> None:
    registry = ledgerflow.WorkflowRegistry()

    @registry.workflow("greet")
    def greet(ctx: ledgerflow.Context, data: dict[str, str]) -> object:
        return ctx.step("hello", lambda: f"hello {data['name']}")

    settings = ledgerflow.Settings(database_url=f"sqlite:///{tmp_path}/public.db",
                                   sink_path=str(tmp_path / "events.jsonl"),
                                   kafka_bootstrap=None, api_tokens=None)
    app = ledgerflow.Ledgerflow.open(settings, registry=registry)
    try:
        with TestClient(ledgerflow.api.create_app(app)) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            created = client.post("/api/runs", json={"workflowId": "greet",
                                                     "input": {"name": "Ada"}})
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]
            app.engine.run_due()
            run = client.get(f"/api/runs/{run_id}").json()
            assert (run["status"], run["result"]) == ("completed", "hello Ada")
            assert client.get("/api/runs/nope").status_code == 404
        with pytest.raises(ledgerflow.UnknownRun):
            app.engine.state("nope")
        with pytest.raises(ledgerflow.UnknownWorkflow):
            app.engine.trigger("no-such-workflow")
    finally:
        app.close()
