"""OpenTelemetry traces (SDK with the in-memory exporter): the trigger's `traceparent`
parents the run's spans and rides on every Kafka message of the run; a child's spans
nest under the parent's step; a failed step's span has error status; the inbox
consumer continues the trace."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine import Connection

from ledgerflow._app import Ledgerflow
from ledgerflow.api import create_app
from ledgerflow.outbox.consumer import Inbox, InboxMessage
from ledgerflow.settings import Settings
from ledgerflow.testing import FakeClock
from tests._broker import create_topics, read_topic
from tests.api._workflows import registry
from tests.outbox._support import header

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def traced(settings: Settings, clock: FakeClock,
           provider: TracerProvider) -> Iterator[Ledgerflow]:
    app = Ledgerflow.open(settings, registry=registry(), clock=clock, tracer_provider=provider)
    yield app
    app.close()


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def test_an_http_traceparent_parents_the_runs_spans_and_its_messages(
        traced: Ledgerflow, exporter: InMemorySpanExporter) -> None:
    with TestClient(create_app(traced)) as client:
        created = client.post("/api/runs", json={"workflowId": "greet", "input": "ada"},
                              headers={"traceparent": TRACEPARENT})
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    traced.engine.tick()
    assert traced.engine.state(run_id).status == "completed"
    (run,) = spans(exporter, "ledgerflow.run")
    assert trace_id(run) == TRACE_ID
    assert run.parent is not None and format(run.parent.span_id, "016x") == CALLER_SPAN
    assert run.attributes is not None and run.attributes["ledgerflow.run_id"] == run_id
    (step,) = spans(exporter, "ledgerflow.step")
    assert step.parent is not None and run.context is not None
    assert step.parent.span_id == run.context.span_id
    assert step.attributes is not None
    assert dict(step.attributes) == {"ledgerflow.run_id": run_id, "ledgerflow.workflow": "greet",
                                     "ledgerflow.step": "greet", "ledgerflow.attempt": 1}
    history = traced.engine.history(run_id)
    assert {e.metadata["traceparent"] for e in history} == {TRACEPARENT}


def test_every_kafka_message_of_the_run_carries_the_traceparent(
        settings: Settings, clock: FakeClock, provider: TracerProvider,
        kafka_bootstrap: str) -> None:
    topic = f"traced-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, [topic])
    kafka = settings.model_copy(update={"kafka_bootstrap": kafka_bootstrap, "topic": topic})
    lf = Ledgerflow.open(kafka, registry=registry(), clock=clock, tracer_provider=provider)
    caller = trace.SpanContext(int(TRACE_ID, 16), int(CALLER_SPAN, 16), is_remote=True,
                               trace_flags=trace.TraceFlags(1))
    try:
        with trace.use_span(trace.NonRecordingSpan(caller)):  # the Python caller's span
            run = lf.engine.trigger("greet", "ada")
        lf.engine.tick()
        relay = lf.relay()
        try:
            relay.run_once()
        finally:
            relay.publisher.close()
    finally:
        lf.close()
    records = [r for r in read_topic(kafka_bootstrap, topic, expected=4)
               if header(r, "run-id") == run.run_id]
    assert len(records) == 4
    assert {header(r, "traceparent") for r in records} == {TRACEPARENT}


def test_a_python_callers_span_parents_the_run(
        traced: Ledgerflow, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    with provider.get_tracer("tests").start_as_current_span("caller") as caller:
        run = traced.engine.trigger("greet", "ada")
    traced.engine.tick()
    (span,) = spans(exporter, "ledgerflow.run")
    assert span.parent is not None
    assert span.parent.span_id == caller.get_span_context().span_id
    assert traced.engine.state(run.run_id).status == "completed"


def test_a_childs_spans_nest_under_the_parents_step(
        traced: Ledgerflow, exporter: InMemorySpanExporter) -> None:
    run = traced.engine.trigger("parent")
    for _ in range(5):
        traced.engine.tick()
    assert traced.engine.state(run.run_id).status == "completed"
    runs = spans(exporter, "ledgerflow.run")
    parents = [s for s in runs if s.attributes and s.attributes["ledgerflow.workflow"] == "parent"]
    (child,) = [s for s in runs if s.attributes and s.attributes["ledgerflow.workflow"] == "greet"]
    kid = next(s for s in spans(exporter, "ledgerflow.step")
               if s.attributes and s.attributes["ledgerflow.step"] == "kid")
    assert kid.context is not None and child.parent is not None and kid.parent is not None
    assert child.parent.span_id == kid.context.span_id
    assert kid.parent.span_id in {p.context.span_id for p in parents if p.context}
    assert {trace_id(s) for s in [*parents, child, kid]} == {trace_id(child)}


def test_a_failed_steps_span_has_error_status(
        traced: Ledgerflow, exporter: InMemorySpanExporter) -> None:
    traced.engine.trigger("fragile", {"ok": False})
    traced.engine.tick()
    failed = [s for s in spans(exporter, "ledgerflow.step")
              if s.attributes and s.attributes["ledgerflow.step"] == "second"]
    assert failed
    assert all(s.status.status_code is trace.StatusCode.ERROR for s in failed)
    event = failed[0].events[0]
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "Declined"
    (run,) = spans(exporter, "ledgerflow.run")
    assert run.status.status_code is trace.StatusCode.ERROR


def test_the_inbox_consumer_continues_the_messages_trace(
        traced: Ledgerflow, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    inbox = Inbox(traced.db, "billing", tracer_provider=provider)
    message = InboxMessage("topic", 0, 7, "run-1", b"{}",
                           {"idempotency-key": "evt-1", "traceparent": TRACEPARENT})
    seen: list[str | None] = []

    def handle(conn: Connection, msg: InboxMessage) -> None:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))

    assert inbox.process(message, handle)
    (span,) = spans(exporter, "ledgerflow.consume")
    assert trace_id(span) == TRACE_ID and seen == [TRACE_ID]


def test_without_a_caller_span_nothing_is_stored(lf: Ledgerflow) -> None:
    run = lf.engine.trigger("greet", "ada")
    assert "traceparent" not in lf.engine.history(run.run_id)[0].metadata


def test_log_lines_of_a_traced_run_carry_its_trace_id(
        traced: Ledgerflow, exporter: InMemorySpanExporter) -> None:
    import io
    import json
    import logging

    from ledgerflow.observability.logs import configure_logging
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(Settings(log_format="json"), stream)
    try:
        traced.engine.trigger("fragile", {"ok": False})
        traced.engine.tick()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    (run,) = spans(exporter, "ledgerflow.run")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    failed = [x for x in lines if x["logger"] == "ledgerflow.executor"]
    assert failed and {x["trace_id"] for x in failed} == {trace_id(run)}


def test_another_process_executing_the_run_later_joins_the_stored_trace(
        lf: Ledgerflow, traced: Ledgerflow, clock: FakeClock,
        exporter: InMemorySpanExporter) -> None:
    from datetime import timedelta
    caller = trace.SpanContext(int(TRACE_ID, 16), int(CALLER_SPAN, 16), is_remote=True,
                               trace_flags=trace.TraceFlags(1))
    with trace.use_span(trace.NonRecordingSpan(caller)):  # the API host: no SDK there
        run = lf.engine.trigger("greet", "ada")
    clock.advance(timedelta(hours=3))
    traced.engine.tick()  # a worker elsewhere, hours later
    assert traced.engine.state(run.run_id).status == "completed"
    (span,) = spans(exporter, "ledgerflow.run")
    assert trace_id(span) == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == CALLER_SPAN


def test_spans_a_steps_code_starts_are_children_of_its_step_span(
        settings: Settings, clock: FakeClock, provider: TracerProvider,
        exporter: InMemorySpanExporter) -> None:
    from datetime import timedelta

    from ledgerflow import Context, WorkflowRegistry

    user = provider.get_tracer("user-code")
    reg = WorkflowRegistry()

    def work(label: str) -> str:
        with user.start_as_current_span(f"user.{label}"):
            return label

    @reg.workflow("spans")
    def spans_wf(ctx: Context, data: object) -> object:
        plain = ctx.step("plain", lambda: work("plain"))
        timed = ctx.step("timed", lambda: work("timed"), timeout=timedelta(seconds=30))
        both = ctx.parallel("fan", {"x": lambda: work("x"), "y": lambda: work("y")})
        return [plain, timed, both]

    app = Ledgerflow.open(settings, registry=reg, clock=clock, tracer_provider=provider)
    try:
        run = app.engine.trigger("spans")
        app.engine.tick()
        assert app.engine.state(run.run_id).status == "completed"
    finally:
        app.close()
    steps = {s.attributes["ledgerflow.step"]: s for s in spans(exporter, "ledgerflow.step")
             if s.attributes}
    assert set(steps) == {"plain", "timed", "fan/x", "fan/y"}, set(steps)
    for label, step in (("plain", "plain"), ("timed", "timed"), ("x", "fan/x"),
                        ("y", "fan/y")):
        (mine,) = spans(exporter, f"user.{label}")
        parent, context = mine.parent, steps[step].context
        assert parent is not None and context is not None
        assert parent.span_id == context.span_id, (label, step)


def _eager(app: Ledgerflow, workflow: str, data: object = None) -> str:
    """Trigger `workflow` eagerly on a worker of `app` and wait until it stops running."""
    from ledgerflow import Worker
    worker = Worker(app.engine, threads=1, poll_interval=30).start()  # no poll finds it
    try:
        run = app.engine.trigger(workflow, data, eager=True)
        assert run.created
        deadline = time.monotonic() + 30
        while app.engine.state(run.run_id).status in ("pending", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        worker.stop()
    return run.run_id


def traceparent_of(span: ReadableSpan) -> str:
    assert span.context is not None
    found = span.context
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"


def test_an_eager_run_under_no_span_is_the_root_of_its_trace(
        traced: Ledgerflow, exporter: InMemorySpanExporter) -> None:
    run_id = _eager(traced, "greet", "ada")
    assert traced.engine.state(run_id).status == "completed"
    (run,) = spans(exporter, "ledgerflow.run")
    assert run.parent is None and run.attributes is not None
    assert run.attributes["ledgerflow.run_id"] == run_id
    (step,) = spans(exporter, "ledgerflow.step")
    assert step.parent is not None and run.context is not None
    assert step.parent.span_id == run.context.span_id
    assert not spans(exporter, "ledgerflow.trigger")  # the run's own span is the root
    history = traced.engine.history(run_id)
    assert {e.metadata["traceparent"] for e in history} == {traceparent_of(run)}


def test_an_eager_run_under_a_callers_span_stores_the_callers_traceparent(
        traced: Ledgerflow, exporter: InMemorySpanExporter) -> None:
    caller = trace.SpanContext(int(TRACE_ID, 16), int(CALLER_SPAN, 16), is_remote=True,
                               trace_flags=trace.TraceFlags(1))
    with trace.use_span(trace.NonRecordingSpan(caller)):
        run_id = _eager(traced, "greet", "ada")
    (run,) = spans(exporter, "ledgerflow.run")
    assert trace_id(run) == TRACE_ID
    assert run.parent is not None and format(run.parent.span_id, "016x") == CALLER_SPAN
    assert {e.metadata["traceparent"] for e in traced.engine.history(run_id)} == {TRACEPARENT}


def test_a_later_execution_of_an_eager_run_is_a_child_of_its_first(
        traced: Ledgerflow, exporter: InMemorySpanExporter) -> None:
    run_id = _eager(traced, "booking")  # holds a seat, then waits for a signal
    assert traced.engine.state(run_id).status == "suspended"
    traced.engine.signal(run_id, "confirm")
    traced.engine.tick()
    assert traced.engine.state(run_id).status == "completed"
    first, later = sorted(spans(exporter, "ledgerflow.run"), key=lambda s: s.start_time or 0)
    assert first.parent is None and first.context is not None
    assert later.parent is not None and later.parent.span_id == first.context.span_id
    assert trace_id(later) == trace_id(first)


def test_an_eager_run_no_thread_took_ends_its_span_and_its_execution_joins_the_trace(
        traced: Ledgerflow, exporter: InMemorySpanExporter,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow import Worker
    worker = Worker(traced.engine, threads=1, poll_interval=30).start()
    # injected: the worker stops between the trigger's lease and its hand-over
    monkeypatch.setattr(traced.engine.wakeup, "hand", lambda claimed: False)
    try:
        run_id = traced.engine.trigger("greet", "ada", eager=True).run_id
    finally:
        worker.stop()
    (opened,) = spans(exporter, "ledgerflow.run")  # ended by the trigger, not executed
    assert not spans(exporter, "ledgerflow.step")
    traced.engine.request_stop(False)  # the engine serves again (as a later worker)
    traced.engine.tick()
    assert traced.engine.state(run_id).status == "completed"
    later = next(s for s in spans(exporter, "ledgerflow.run") if s is not opened)
    assert opened.context is not None and later.parent is not None
    assert later.parent.span_id == opened.context.span_id


@pytest.mark.parametrize("eager", [True, False])
def test_a_run_the_sampler_drops_is_dropped_in_every_execution(
        settings: Settings, clock: FakeClock, exporter: InMemorySpanExporter,
        eager: bool) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))  # drops every root
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Ledgerflow.open(settings, registry=registry(), clock=clock, tracer_provider=provider)
    try:
        if eager:
            run_id = _eager(app, "booking")
        else:
            run_id = app.engine.trigger("booking").run_id
            app.engine.tick()
        app.engine.signal(run_id, "confirm")
        app.engine.tick()  # a later execution: it follows the stored decision
        assert app.engine.state(run_id).status == "completed"
        stored = {e.metadata["traceparent"] for e in app.engine.history(run_id)}
    finally:
        app.close()
    (traceparent,) = stored
    assert int(traceparent[-2:], 16) & 1 == 0  # the decision stored: not sampled
    assert exporter.get_finished_spans() == ()
