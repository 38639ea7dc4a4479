"""The lifecycle machine: exactly the declared transitions (the table below, written out
by hand), and nothing else gets through."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain import events as ev
from ledgerflow.domain.errors import IllegalTransition
from ledgerflow.domain.lifecycle import (
    MACHINE,
    NEXT_STATUS,
    TERMINAL,
    RunStatus,
    Trigger,
    next_status,
)
from ledgerflow.domain.state import (
    Begin,
    Cancel,
    Command,
    Complete,
    Fail,
    Rollback,
    Suspend,
    Wake,
    decide,
    evolve,
    fold,
    initial,
)

S = RunStatus
DESIGN_TABLE = {
    (S.PENDING, Trigger.BEGIN): S.RUNNING,
    (S.RUNNING, Trigger.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, Trigger.WAKE): S.RUNNING,
    (S.RUNNING, Trigger.COMPLETE): S.COMPLETED,
    (S.RUNNING, Trigger.ROLLBACK): S.COMPENSATING,
    (S.SUSPENDED, Trigger.ROLLBACK): S.COMPENSATING,
    (S.RUNNING, Trigger.FAIL): S.FAILED,
    (S.SUSPENDED, Trigger.FAIL): S.FAILED,
    (S.COMPENSATING, Trigger.FAIL): S.FAILED,
    (S.PENDING, Trigger.CANCEL): S.CANCELED,
    (S.RUNNING, Trigger.CANCEL): S.CANCELED,
    (S.SUSPENDED, Trigger.CANCEL): S.CANCELED,
    (S.COMPENSATING, Trigger.CANCEL): S.CANCELED,
}


def test_lookup_table_is_the_declared_machine() -> None:
    assert NEXT_STATUS == DESIGN_TABLE
    assert set(MACHINE.events) == {t.value for t in Trigger}
    assert {S.COMPLETED, S.FAILED, S.CANCELED} == TERMINAL


def test_machine_has_no_auto_transitions() -> None:
    assert not any(name.startswith("to_") for name in MACHINE.events)


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("trigger", list(Trigger))
def test_every_pair_is_allowed_or_refused_with_names(status: S, trigger: Trigger) -> None:
    if (status, trigger) in DESIGN_TABLE:
        assert next_status("r1", status, trigger) is DESIGN_TABLE[(status, trigger)]
        return
    with pytest.raises(IllegalTransition) as info:
        next_status("r1", status, trigger)
    message = str(info.value)
    assert "r1" in message and status.value in message and trigger.value in message


def test_terminal_states_allow_nothing() -> None:
    for status in TERMINAL:
        assert not [t for t in Trigger if (status, t) in NEXT_STATUS]


def _command(trigger: Trigger) -> Command:
    error = ev.ErrorInfo(type="Boom", message="boom")
    return {
        Trigger.BEGIN: Begin(),
        Trigger.SUSPEND: Suspend(waitpoint=ev.Waitpoint(kind="signal", name="approval")),
        Trigger.WAKE: Wake(reason="signal", name="approval"),
        Trigger.COMPLETE: Complete(result={"ok": True}),
        Trigger.ROLLBACK: Rollback(error=error),
        Trigger.FAIL: Fail(error=error),
        Trigger.CANCEL: Cancel(reason="user"),
    }[trigger]


@given(st.lists(st.sampled_from(list(Trigger)), max_size=25))
def test_random_commands_follow_the_machine(triggers: list[Trigger]) -> None:
    state = evolve(initial("run-h"), ev.RunCreated(workflow_id="w", workflow_version="1"))
    accepted: list[ev.Event] = [ev.RunCreated(workflow_id="w", workflow_version="1")]
    path = [state.status]
    for trigger in triggers:
        before = state
        try:
            new_events = decide(state, _command(trigger))
        except IllegalTransition as error:
            assert (before.status, trigger) not in NEXT_STATUS
            assert error.status == before.status.value and error.trigger == trigger.value
            assert state == before
            continue
        assert (before.status, trigger) in NEXT_STATUS
        for event in new_events:
            state = evolve(state, event)
        accepted.extend(new_events)
        assert state.status is NEXT_STATUS[(before.status, trigger)]
        path.append(state.status)
    for a, b in itertools.pairwise(path):
        assert any(NEXT_STATUS.get((a, t)) is b for t in Trigger)
    assert fold("run-h", accepted) == state
    assert state.version == len(accepted)


def test_fold_tracks_waitpoint_children_and_result() -> None:
    wp = ev.Waitpoint(kind="token", name="manual-check", token_id="tok-1")
    state = fold("r", [
        ev.RunCreated(workflow_id="w", workflow_version="2", tenant_meta={"tenantId": "acme"},
                      tags=["a"]),
        ev.RunStarted(),
        ev.ChildStarted(step_id="remind", child_run_id="c1", workflow_id="child"),
        ev.RunSuspended(waitpoint=wp),
    ])
    assert state.status is S.SUSPENDED and state.waitpoint == wp
    assert state.children == ("c1",) and state.tenant_meta == {"tenantId": "acme"}
    state = evolve(evolve(state, ev.RunWoken(reason="token")), ev.RunCompleted(result=[1]))
    assert state.status is S.COMPLETED and state.result == [1] and state.waitpoint is None
