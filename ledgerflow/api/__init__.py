"""The HTTP API: `create_app(ledgerflow, settings) -> FastAPI` (see DESIGN.md's route table)."""

from ledgerflow.api._factory import create_app
from ledgerflow.api._gate import Principal

__all__ = ["Principal", "create_app"]
