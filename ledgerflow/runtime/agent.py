"""Agent steps: a step whose attempt returns a suspension parks the whole run until the
results of its pending tool calls arrive, then is entered again with them.

A step's code returns `Suspend(state=..., pending=[...])`, or any object with
`status == "suspended"` and `state` and `pending_tool_calls` attributes (so an agent
library's own "suspended run" works without importing ledgerflow). The attempt is then
journaled as `StepSuspended` (round n, the agent's `state`, the `pending` calls and
the token id of the round) and the run parks on waitpoint `{kind: "agent", name:
step id, tokenId, pending}`. Resolving the token (`RunCommands.resolve_token`, `POST
/api/runs/{id}/tokens/{tokenId}`) appends `TokenResolved` and wakes the run; replay
reaches the step again, and its next attempt runs with `current_step().resume_data`
(the token's payload) and `current_step().suspended_state` (the journaled state). It
may suspend again: every round is journaled, each with a token of its own.

Attempts count on across rounds (each attempt id stays unique in the journal); a
step's `max_attempts` is a budget per round, counted from the round's first attempt.
A parallel branch cannot suspend (its attempt fails, saying so).

Interface: `attempts.StepAttempts` calls `suspension`, `resume_of`, `round_base` and
`suspended`; `Context.step` calls `waiting`. Pure functions of the journal.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from ledgerflow.domain import events as ev
from ledgerflow.runtime.failures import json_roundtrip
from ledgerflow.runtime.steps import Resume

if TYPE_CHECKING:
    from ledgerflow.runtime.journal import Journal

_AGENT_NAMESPACE = uuid.UUID("0d3c6a52-8f0e-4a8b-b1f5-6c2f3e9d7a11")


@dataclass(frozen=True)
class Suspend:
    """What an agent step returns to suspend the run until its tool calls are answered.

    `state`: the agent's snapshot (JSON), handed back as `current_step().
    suspended_state`; `pending`: the tool calls it waits on (JSON), shown on the run's
    waitpoint for whoever answers them."""

    state: Any = None
    pending: Sequence[Any] = field(default_factory=list)
    status: ClassVar[str] = "suspended"

    @property
    def pending_tool_calls(self) -> Sequence[Any]:
        return self.pending


def suspension(value: Any) -> tuple[Any, list[Any]] | None:
    """(state, pending) of a step's return value that asks to suspend; else None."""
    if getattr(value, "status", None) != "suspended" or not hasattr(value, "state") \
            or not hasattr(value, "pending_tool_calls"):
        return None
    pending = value.pending_tool_calls
    return _plain(value.state), [_plain(call) for call in (pending or [])]


def _plain(value: Any) -> Any:
    """A pydantic model or a dataclass as plain data (what agent libraries return)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def suspended(journal: Journal, op: str, attempt: int, value: tuple[Any, list[Any]],
              started: datetime) -> ev.StepSuspended:
    """The journal's record of attempt `attempt` of step `op` suspending (`NotSerializable`
    if its state or pending calls cannot be stored)."""
    state, pending = value
    round_ = len(journal.suspensions.get(op, ())) + 1
    token = str(uuid.uuid5(_AGENT_NAMESPACE, f"{journal.run_id}/{op}/{round_}"))
    return ev.StepSuspended(
        step_id=op, attempt=attempt, round=round_, token_id=token, started_at=started,
        state=json_roundtrip(state, f"the suspended state of step {op!r}"),
        pending=json_roundtrip(pending, f"the pending tool calls of step {op!r}"))


def resume_of(journal: Journal, op: str) -> Resume | None:
    """What step `op` re-enters with: its last round's token payload and state."""
    rounds = journal.suspensions.get(op)
    if not rounds or rounds[-1].token_id not in journal.tokens:
        return None
    return Resume(journal.tokens[rounds[-1].token_id], rounds[-1].state)


def waiting(journal: Journal, op: str) -> ev.Waitpoint | None:
    """The waitpoint of step `op` while its last suspension's token is not resolved."""
    rounds = journal.suspensions.get(op)
    if not rounds or rounds[-1].token_id in journal.tokens:
        return None
    last = rounds[-1]
    return ev.Waitpoint(kind="agent", name=op, token_id=last.token_id, pending=last.pending)


def round_base(journal: Journal, op: str) -> int:
    """Attempts of step `op` before its current round (its retry budget starts after)."""
    rounds = journal.suspensions.get(op)
    return rounds[-1].attempt if rounds else 0
