"""The pure model of ledgerflow: lifecycle machine, events, run state, errors. No I/O."""

from domain.errors import (
    ConcurrencyError,
    DuplicateEventId,
    IdempotencyConflict,
    IllegalTransition,
    InvalidEvent,
    InvalidRequest,
    LedgerflowError,
    NonDeterminismError,
    NotAwaited,
    StoreUnavailable,
    UnknownEventType,
    UnknownRun,
    UnknownWorkflow,
)
from domain.events import EVENT_TYPES, ErrorInfo, Event, Waitpoint, decode, encode, register
from domain.lifecycle import MACHINE, NEXT_STATUS, TERMINAL, RunStatus, Trigger, next_status
from domain.state import RunState, decide, evolve, fold

__all__ = [
    "EVENT_TYPES",
    "MACHINE",
    "NEXT_STATUS",
    "TERMINAL",
    "ConcurrencyError",
    "DuplicateEventId",
    "ErrorInfo",
    "Event",
    "IdempotencyConflict",
    "IllegalTransition",
    "InvalidEvent",
    "InvalidRequest",
    "LedgerflowError",
    "NonDeterminismError",
    "NotAwaited",
    "RunState",
    "RunStatus",
    "StoreUnavailable",
    "Trigger",
    "UnknownEventType",
    "UnknownRun",
    "UnknownWorkflow",
    "Waitpoint",
    "decide",
    "decode",
    "encode",
    "evolve",
    "fold",
    "next_status",
    "register",
]
