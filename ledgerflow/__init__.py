"""ledgerflow: durable workflows for Python with an event-sourced run lifecycle."""

from ledgerflow._authoring import (
    ChildFailed,
    StepFailed,
    WaitTimeout,
    WorkflowDef,
    WorkflowRegistry,
    default_registry,
    workflow,
)
from ledgerflow._context import Context, StepTimeout
from ledgerflow._engine import Engine, TickResult, TriggerResult
from ledgerflow._retry import RetryPolicy
from ledgerflow._worker import Worker

__all__ = [
    "ChildFailed", "Context", "Engine", "RetryPolicy", "StepFailed", "StepTimeout",
    "TickResult", "TriggerResult", "WaitTimeout", "Worker", "WorkflowDef", "WorkflowRegistry",
    "default_registry", "workflow",
]
