"""The run lifecycle, declared once with `transitions`.

The `Machine` below is the single declaration of which lifecycle changes exist.
It is built once at import; the hot path uses `NEXT_STATUS`, a plain dict
derived from the machine's own transition table, so checking a trigger costs a
dict lookup rather than a Machine per run.
"""

from __future__ import annotations

from enum import StrEnum

from transitions import Machine

from ledgerflow.domain.errors import IllegalTransition


class RunStatus(StrEnum):
    """The seven states of a run. Values are the lower-case wire names."""

    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class Trigger(StrEnum):
    """The seven named lifecycle triggers."""

    BEGIN = "begin"
    SUSPEND = "suspend"
    WAKE = "wake"
    COMPLETE = "complete"
    ROLLBACK = "rollback"
    FAIL = "fail"
    CANCEL = "cancel"


TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})

_S = RunStatus
TRANSITIONS: list[dict[str, object]] = [
    {"trigger": Trigger.BEGIN.value, "source": _S.PENDING, "dest": _S.RUNNING},
    {"trigger": Trigger.SUSPEND.value, "source": _S.RUNNING, "dest": _S.SUSPENDED},
    {"trigger": Trigger.WAKE.value, "source": _S.SUSPENDED, "dest": _S.RUNNING},
    {"trigger": Trigger.COMPLETE.value, "source": _S.RUNNING, "dest": _S.COMPLETED},
    {"trigger": Trigger.ROLLBACK.value, "source": [_S.RUNNING, _S.SUSPENDED],
     "dest": _S.COMPENSATING},
    {"trigger": Trigger.FAIL.value, "source": [_S.RUNNING, _S.SUSPENDED, _S.COMPENSATING],
     "dest": _S.FAILED},
    {"trigger": Trigger.CANCEL.value,
     "source": [_S.PENDING, _S.RUNNING, _S.SUSPENDED, _S.COMPENSATING], "dest": _S.CANCELED},
]

MACHINE = Machine(
    model=None,
    states=RunStatus,
    transitions=TRANSITIONS,
    initial=RunStatus.PENDING,
    auto_transitions=False,
    ignore_invalid_triggers=False,
    send_event=False,
)


def _derive_table(machine: Machine) -> dict[tuple[RunStatus, Trigger], RunStatus]:
    table: dict[tuple[RunStatus, Trigger], RunStatus] = {}
    for trigger_name, event in machine.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                # transitions names Enum states by member name ("RUNNING").
                table[(RunStatus[source], Trigger(trigger_name))] = RunStatus[str(transition.dest)]
    return table


NEXT_STATUS: dict[tuple[RunStatus, Trigger], RunStatus] = _derive_table(MACHINE)


def next_status(run_id: str, status: RunStatus, trigger: Trigger) -> RunStatus:
    """Return the status `trigger` leads to from `status`, or raise `IllegalTransition`."""
    try:
        return NEXT_STATUS[(status, trigger)]
    except KeyError:
        raise IllegalTransition(run_id, status.value, trigger.value) from None


def allowed_triggers(status: RunStatus) -> list[Trigger]:
    """The triggers the machine allows from `status`, in declaration order."""
    return [trigger for trigger in Trigger if (status, trigger) in NEXT_STATUS]
