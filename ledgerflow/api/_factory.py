"""`create_app`: the FastAPI application over one `Ledgerflow`."""

from __future__ import annotations

from fastapi import FastAPI

from ledgerflow._app import Ledgerflow
from ledgerflow.api import (
    _admin,
    _docs,
    _graph,
    _health,
    _metrics,
    _queues,
    _runs,
    _schedules,
    _streams,
    _workflows,
    ui,
)
from ledgerflow.api._errors import install_error_handlers
from ledgerflow.api._gate import Gate, Tokens
from ledgerflow.observability.tracing import TraceContextMiddleware
from ledgerflow.settings import Settings

DESCRIPTION = """Durable, event-sourced workflow runs: trigger, inspect, command, audit.

Errors are JSON `{error, message, details?}`. With `LEDGERFLOW_API_TOKENS` set, every
route but `/healthz` needs `Authorization: Bearer <token>`. POST routes accept an
`Idempotency-Key` header: a retry with the same key and body gets the same response."""


def create_app(app: Ledgerflow, settings: Settings | None = None) -> FastAPI:
    """The HTTP API over `app`; auth and size limits come from `settings` (default:
    the settings `app` was opened with)."""
    settings = settings if settings is not None else app.settings
    api = FastAPI(title="ledgerflow", version="1", description=DESCRIPTION, docs_url=None,
                  redoc_url=None)
    tokens = Tokens(settings.token_tenants())
    api.state.ledgerflow = app
    api.state.tokens = tokens
    install_error_handlers(api)
    api.state.stream_max_seconds = settings.stream_max_seconds
    api.include_router(_runs.router)
    api.include_router(_streams.router)
    api.include_router(_workflows.router)
    api.include_router(_schedules.router)
    api.include_router(_queues.router)
    api.include_router(_admin.router)
    api.include_router(_admin.health)
    api.include_router(_graph.router)
    api.include_router(_metrics.router)
    api.include_router(_health.router)
    api.include_router(_docs.router)
    ui.mount(api)
    api.add_middleware(Gate, tokens=tokens,
                       max_body_bytes=settings.max_body_bytes)
    api.add_middleware(TraceContextMiddleware)
    return api
