"""`ledgerflow.client.Client` against a real `ledgerflow serve` on PostgreSQL: typed
records back, the engine's exceptions for the API's errors, streams over SSE."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from ledgerflow.client import Client, RemoteError, StreamEntry
from ledgerflow.client import _calls as calls
from ledgerflow.domain.errors import (
    IllegalTransition,
    NotAwaited,
    RerunNotConfirmed,
    RunConflict,
    UnknownRun,
    UnknownWorkflow,
)
from ledgerflow.domain.lifecycle import RunStatus
from ledgerflow.projections.queries import HistoryEntry, JournalEntry, RunRecord
from tests.client.conftest import unique


def test_trigger_read_and_list_give_the_api_records(client: Client) -> None:
    key = unique("key")
    made = client.request(calls.trigger("greet", "ada", idempotency_key=key))
    again = client.request(calls.trigger("greet", "ada", idempotency_key=key))
    first = made.value
    assert (made.created, again.created, again.replayed) == (True, False, True)
    assert again.value.run_id == first.run_id
    assert not client.request(calls.trigger("greet", "ada", run_id=first.run_id)).created
    assert isinstance(first, RunRecord) and first.workflow_id == "greet"
    done = client.wait(first.run_id, timeout=60, poll=0.1)
    assert (done.status, done.result) == (RunStatus.COMPLETED, "hello ada")
    assert client.get(first.run_id[:10]).run_id == first.run_id  # a prefix, as locally
    history = client.history(first.run_id)
    assert all(isinstance(e, HistoryEntry) for e in history)
    assert [e.type for e in history] == ["RunCreated", "RunStarted", "StepCompleted",
                                         "RunCompleted"]
    journal = client.journal(first.run_id)
    assert [(j.step_id, j.status) for j in journal] == [("greet", "completed")]
    assert isinstance(journal[0], JournalEntry)
    tag = unique("tag")
    tagged = {client.trigger("greet", n, tags=[tag]).run_id for n in range(3)}
    listed = [r.run_id for r in client.list_runs(page_size=1, tag=tag)]  # three pages
    assert sorted(listed) == sorted(tagged)
    assert client.list_page(limit=2, tag=tag).next_cursor is not None


def test_api_errors_are_raised_as_the_engines_exceptions(client: Client, url: str) -> None:
    run = client.trigger("greet", "x").run_id
    client.wait(run, poll=0.1)
    with pytest.raises(IllegalTransition) as illegal:
        client.cancel(run)
    assert (illegal.value.run_id, illegal.value.status, illegal.value.trigger) == (
        run, "completed", "cancel")
    assert illegal.value.details()["runId"] == run and "'completed'" in str(illegal.value)
    with pytest.raises(NotAwaited):
        client.token(run, "no-such-token")
    missing = unique("missing")
    with pytest.raises(UnknownRun) as unknown:
        client.get(missing)
    assert unknown.value.run_id == missing and unknown.value.http_status == 404
    with pytest.raises(UnknownWorkflow) as workflow:
        client.trigger("no-such-workflow")
    assert "greet@1" in workflow.value.known
    with pytest.raises(RunConflict) as conflict:
        client.trigger("greet", "other input", run_id=run)
    assert conflict.value.run_id == run
    with Client(url) as anonymous, pytest.raises(RemoteError) as denied:
        anonymous.get(run)
    assert (denied.value.http_status, denied.value.code) == (401, "unauthorized")
    with Client(url, token="acme-token") as acme, pytest.raises(UnknownRun):
        acme.get(run)  # another tenant's run: not found, as on the server


def test_signals_events_tokens_reach_a_waiting_run(client: Client) -> None:
    run = client.trigger("waiter", None).run_id
    _until(lambda: client.get(run).status is RunStatus.SUSPENDED)
    assert client.signal(run, "go", {"n": 1}).run_id == run
    _until(lambda: (client.get(run).waitpoint or {}).get("name") == "payment.settled")
    client.event(run, "payment.settled", {"amount": 3})
    _until(lambda: (client.get(run).waitpoint or {}).get("kind") == "token")
    token = (client.get(run).waitpoint or {})["tokenId"]
    client.token(run, token, "checked")
    done = client.wait(run, poll=0.1)
    assert done.result == {"go": {"n": 1}, "paid": {"amount": 3}, "note": "checked"}


def test_rerun_of_an_unsafe_workflow_and_resume_of_a_parent_stored_elsewhere(
        client: Client) -> None:
    run = client.trigger("charge", 10).run_id
    client.wait(run, poll=0.1)
    with pytest.raises(RerunNotConfirmed) as refused:
        client.rerun(run)
    assert refused.value.run_id == run and refused.value.http_status == 409
    assert client.rerun(run, confirm=True).rerun_of == run
    failed = client.trigger("fragile", {"ok": False}).run_id
    assert client.wait(failed, poll=0.1).status is RunStatus.FAILED
    resumed = client.resume(failed, input={"ok": True})
    assert client.wait(resumed.run_id, poll=0.1).result == {"first": {"n": 1},
                                                            "second": "paid"}
    elsewhere = unique("staging-run")
    with pytest.raises(UnknownRun):
        client.resume(elsewhere)
    new = client.resume(elsewhere, workflow_id="fragile", resume_from_step="second",
                        seed_results={"first": {"n": 7}}, input={"ok": True})
    assert new.resumed_from == elsewhere
    assert client.wait(new.run_id, poll=0.1).result == {"first": {"n": 7}, "second": "paid"}


def test_a_stream_is_read_live_across_reconnects_and_from_a_position(
        client: Client, url: str) -> None:
    run = client.trigger("streamer", {"words": ["to", "ken", "s"]}).run_id
    seen: list[StreamEntry] = []
    reader = threading.Thread(target=lambda: seen.extend(client.stream(run)), daemon=True)
    reader.start()
    _until(lambda: client.get(run).status is RunStatus.SUSPENDED)
    time.sleep(2.5)  # longer than the server keeps a stream open: the client reconnects
    client.signal(run, "finish")
    reader.join(timeout=60)
    assert not reader.is_alive()  # the stream ended with the run
    assert [(e.name, e.chunk) for e in seen] == [
        ("progress", "start"), ("tokens", "to"), ("tokens", "ken"), ("tokens", "s"),
        ("progress", "done")]
    assert [e.step_id for e in seen] == [None, "generate", "generate", "generate", None]
    versions = [e.version for e in seen]
    assert versions == sorted(set(versions))  # in order, none twice
    rest = list(client.stream(run, after=versions[1]))
    assert [e.chunk for e in rest] == ["ken", "s", "done"]
    raw = httpx.get(f"{url}/api/runs/{run}/stream", timeout=30, headers={
        "Authorization": "Bearer root-token", "Last-Event-ID": str(versions[3])})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text == (f"id: {versions[4]}\nevent: chunk\ndata: "
                        f"{_data(client, run, versions[4])}\n\nevent: end\ndata: "
                        '{"status":"completed"}\n\n')
    bad = httpx.get(f"{url}/api/runs/{run}/stream", timeout=30, headers={
        "Authorization": "Bearer root-token", "Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["message"]


def test_the_other_routes(client: Client) -> None:
    assert client.health() == {"status": "ok"}
    assert "ledgerflow_runs" in client.metrics()
    assert {c["name"] for c in client.health_details()["checks"]} >= {"store"}
    infos = {w.name: w for w in client.workflows()}
    assert infos["charge"].rerun_safety == "unsafe" and infos["greet"].rerun_safety == "safe"
    assert isinstance(client.dead_letters(), list)
    assert client.replay_dead_letters(ids=[2**40]) == []
    assert client.discard_dead_letters([2**40]) == []
    with pytest.raises(RemoteError) as not_a_flow:
        client.graph("greet")
    assert not_a_flow.value.code == "not_a_flow"


def _data(client: Client, run: str, version: int) -> str:
    import orjson

    found = [e for e in client.stream(run, after=version - 1) if e.version == version]
    return orjson.dumps(found[0].to_wire()).decode()


def _until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
