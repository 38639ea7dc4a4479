"""`GET /api/health/details`: the doctor's checks (`observability.doctor`) over HTTP.

200 when every check is ok or warn, 503 when one fails; the body is the report either
way: `{status, checks: [{name, status, value, message}]}`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ledgerflow._app import Ledgerflow
from ledgerflow.observability.doctor import diagnose

router = APIRouter(tags=["health"])


@router.get("/api/health/details", responses={503: {"description": "a check failed"}})
def health_details(request: Request) -> Any:
    """Named checks, each ok|warn|fail with its figure and what to do when not ok."""
    lf: Ledgerflow = request.app.state.ledgerflow
    report = diagnose(lf.store, lf.settings, lf.clock)
    return JSONResponse(report.to_json(), status_code=503 if report.status == "fail" else 200)
