"""`GET /metrics`: the Prometheus text exposition of this process's metrics (behind the
API tokens like every route but `/healthz`: give Prometheus a bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ledgerflow._app import Ledgerflow
from ledgerflow.observability.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """ledgerflow's Prometheus metrics (text exposition format)."""
    lf: Ledgerflow = request.app.state.ledgerflow
    if lf.metrics is None:
        lf.metrics = Metrics(lf.store, clock=lf.clock,
                             cache_seconds=lf.settings.metrics_cache_seconds)
    return Response(lf.metrics.render(), media_type=CONTENT_TYPE)
