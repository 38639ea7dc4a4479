"""The HTTP API: `create_app(ledgerflow, settings) -> FastAPI`, the routes under
`/api/runs` (trigger, list, read, commands on a run), the outbox's dead letters and
`/healthz`; the OpenAPI document at `/openapi.json` describes each."""

from ledgerflow.api._factory import create_app
from ledgerflow.api._gate import Principal

__all__ = ["Principal", "create_app"]
