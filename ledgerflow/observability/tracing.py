"""`Tracing`: OpenTelemetry spans for runs and steps, through the OpenTelemetry API only.

Interface: `Tracing(tracer_provider=None)` is an `Observer` (the composition root
gives it to the `Engine` with the metrics); `TraceContextMiddleware` makes an HTTP
request's `traceparent` header the current context of its handler.

Without an SDK configured the API is a no-op: spans cost a no-op call each and a
trigger made under no span stores nothing. To export, configure the SDK in the
process, e.g. run `opentelemetry-instrument ledgerflow serve` (package
`opentelemetry-distro`), which reads the standard `OTEL_*` variables
(`OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`...).

Spans: `ledgerflow.run` around each execution of a run (a run that sleeps and
resumes hours later on another host has one per execution, all children of the
same stored context) and `ledgerflow.step` for each step attempt, current while the
step's code runs, so the spans that code starts are its children (a retry is a
span of its own with its `ledgerflow.attempt`; a failed attempt has ERROR status
and an `exception` event). Attributes: `ledgerflow.run_id`, `ledgerflow.workflow`,
`ledgerflow.step`, `ledgerflow.attempt`. Context: the W3C `traceparent` of the
caller when the run is triggered (the HTTP request's, or the Python caller's
current span) is stored in the run's metadata and parents its spans. With neither,
when spans are recorded, a trigger that executes the run at once in this process
(eager) starts the run's first `ledgerflow.run` span there, the root of the run's
trace, and stores its context; any other trigger stores that of a root
`ledgerflow.trigger` span. So every execution of a run shares one trace. A child run
stores the context of a `ledgerflow.step` span for the parent's child step; the
outbox sends the stored `traceparent` as a header on every Kafka message of the run.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

from ledgerflow.domain.metadata import TRACEPARENT
from ledgerflow.runtime.observe import Observer, OpenedRun

PROPAGATOR = TraceContextTextMapPropagator()
RUN_ID, WORKFLOW, STEP, ATTEMPT = ("ledgerflow.run_id", "ledgerflow.workflow",
                                   "ledgerflow.step", "ledgerflow.attempt")


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span (None when there is none)."""
    return current_traceparent_of(trace.get_current_span())


def context_of(traceparent: object) -> otel_context.Context | None:
    """The context a stored `traceparent` names (None: none stored)."""
    if not isinstance(traceparent, str):
        return None
    return PROPAGATOR.extract({TRACEPARENT: traceparent})


class Tracing(Observer):
    """Spans for runs and steps on `tracer_provider` (default: the global one)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("ledgerflow", tracer_provider=tracer_provider)

    def execution(self, run_id: str, workflow: str,
                  metadata: Mapping[str, Any]) -> AbstractContextManager[None]:
        parent = context_of(metadata.get(TRACEPARENT))
        return _Current(self.tracer.start_span(
            "ledgerflow.run", context=parent, attributes={RUN_ID: run_id, WORKFLOW: workflow}),
            _failed_run)

    def step(self, run_id: str, workflow: str, step_id: str,
             attempt: int) -> AbstractContextManager[None]:
        """A `ledgerflow.step` span, current while the attempt's code runs: spans that
        code starts are its children. An exception sets its ERROR status and an
        `exception` event."""
        return _Current(self.tracer.start_span("ledgerflow.step", attributes={
            RUN_ID: run_id, WORKFLOW: workflow, STEP: step_id, ATTEMPT: attempt}),
            _failed_step)

    def run_ended(self, workflow: str, status: str) -> None:
        span = trace.get_current_span()
        span.set_attribute("ledgerflow.status", str(status))
        if str(status) == "failed":
            span.set_status(Status(StatusCode.ERROR, "the run failed"))

    def traceparent(self) -> str | None:
        """The caller's context; with none, a root `ledgerflow.trigger` span's when an SDK
        is configured (so every execution of the run shares one trace, and one sampling
        decision: a span the sampler drops is stored unsampled), else None."""
        found = current_traceparent()
        if found is not None:
            return found
        span = self.tracer.start_span("ledgerflow.trigger")
        try:
            return current_traceparent_of(span)  # None: the API's no-op span
        finally:
            span.end()

    def open_run(self, run_id: str, workflow: str) -> OpenedRun:
        """An eager trigger: the run's first `ledgerflow.run` span starts here, under the
        caller's span if there is one (whose `traceparent` the run stores, as any run);
        with none, it is the root of the run's trace and the run stores its own
        `traceparent`, so later executions are its children (no `ledgerflow.trigger`
        span: one span fewer per run)."""
        span = self.tracer.start_span("ledgerflow.run",
                                      attributes={RUN_ID: run_id, WORKFLOW: workflow})
        caller = current_traceparent()
        return _OpenedSpan(caller if caller is not None else current_traceparent_of(span),
                           span)

    def child_traceparent(self, workflow: str, run_id: str, step_id: str) -> str | None:
        span = self.tracer.start_span("ledgerflow.step", attributes={
            RUN_ID: run_id, WORKFLOW: workflow, STEP: step_id, ATTEMPT: 1})
        try:
            return current_traceparent_of(span)
        finally:
            span.end()


class _OpenedSpan(OpenedRun):
    """A run span started by the trigger (`Tracing.open_run`), current in the thread that
    executes the run."""

    def __init__(self, traceparent: str | None, span: trace.Span) -> None:
        self.traceparent, self._span = traceparent, span

    def execution(self) -> AbstractContextManager[None]:
        return _Current(self._span, _failed_run)

    def close(self) -> None:
        self._span.end()


class _Current:
    """`span` current from `__enter__`, ended at `__exit__`, where an exception is told
    to `failed(span, exc)` and passes through. What the API's `start_as_current_span`
    does, in one object instead of four nested context managers: a third of a
    recorded step span's cost (the workflows bench's `wf_obs_overhead`)."""

    __slots__ = ("_failed", "_span", "_token")

    def __init__(self, span: trace.Span,
                 failed: Callable[[trace.Span, BaseException], None]) -> None:
        self._span, self._failed = span, failed

    def __enter__(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc is not None and self._span.is_recording():
                self._failed(self._span, exc)
        finally:
            otel_context.detach(self._token)
            self._span.end()


def _failed_run(span: trace.Span, exc: BaseException) -> None:
    """As the API records an exception leaving a span (a `BaseException` that is not an
    `Exception`, such as a worker stopping, is no failure)."""
    if isinstance(exc, Exception):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _failed_step(span: trace.Span, exc: BaseException) -> None:
    name = type(exc).__name__
    span.add_event("exception", {
        "exception.type": name, "exception.message": str(exc),
        "exception.stacktrace": "".join(traceback.format_exception(exc))})
    span.set_status(Status(StatusCode.ERROR, f"{name}: {exc}"))


def current_traceparent_of(span: trace.Span) -> str | None:
    """The `traceparent` naming `span` (None: an invalid span), as the W3C propagator
    writes it, without the propagator's context and carrier on every trigger."""
    found = span.get_span_context()
    if not found.is_valid:
        return None
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"


class TraceContextMiddleware:
    """ASGI middleware: a request's `traceparent` header becomes the current context,
    so a run it triggers stores it (the HTTP API installs it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in scope.get("headers", []) if k.lower() == b"traceparent"}
        if not headers:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(PROPAGATOR.extract(headers))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
