"""Keys of an event's metadata. Every event of a run's stream carries the run's
workflow id/version and tenant here, so readers (the outbox, audit) need no lookup."""

from __future__ import annotations

from typing import Any

WORKFLOW_ID = "workflow_id"
WORKFLOW_VERSION = "workflow_version"
TENANT = "tenant"
CORRELATION_ID = "correlation_id"
CAUSATION_ID = "causation_id"
ACTOR = "actor"
IDEMPOTENCY_KEY = "idempotency_key"
TRACEPARENT = "traceparent"
"""The W3C trace context a run's spans descend from (its trigger's, or its parent step's)."""


def run_metadata(
    workflow_id: str,
    workflow_version: str,
    tenant: str | None = None,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    actor: str | None = None,
    idempotency_key: str | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """Metadata for an event of a run; unset keys are left out."""
    meta: dict[str, Any] = {WORKFLOW_ID: workflow_id, WORKFLOW_VERSION: workflow_version}
    for key, value in ((TENANT, tenant), (CORRELATION_ID, correlation_id),
                       (CAUSATION_ID, causation_id), (ACTOR, actor),
                       (IDEMPOTENCY_KEY, idempotency_key), (TRACEPARENT, traceparent)):
        if value is not None:
            meta[key] = value
    return meta
