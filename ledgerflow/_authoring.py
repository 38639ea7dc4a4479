"""Authoring API: `@workflow`, the registry, and the exceptions workflow code sees."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from domain.errors import UnknownWorkflow
from domain.events import ErrorInfo

if TYPE_CHECKING:
    from ledgerflow._context import Context

WorkflowFn = Callable[["Context", Any], Any]
F = TypeVar("F", bound=WorkflowFn)


class StepFailed(Exception):
    """A step failed after its last attempt (raised in workflow code; catchable)."""

    def __init__(self, step_id: str, error: ErrorInfo, attempts: int) -> None:
        self.step_id, self.error, self.attempts = step_id, error, attempts
        super().__init__(
            f"step {step_id!r} failed after {attempts} attempt(s): "
            f"{error.type}: {error.message}")


class WaitTimeout(Exception):
    """A wait (signal, event, token) reached its timeout first (catchable)."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        super().__init__(f"wait for {kind} {name!r} timed out")


class ChildFailed(Exception):
    """A child run failed or was canceled."""

    def __init__(self, step_id: str, child_run_id: str, status: str,
                 error: ErrorInfo | None) -> None:
        self.step_id, self.child_run_id, self.status, self.error = (
            step_id, child_run_id, status, error)
        why = f": {error.type}: {error.message}" if error else ""
        super().__init__(f"child run {child_run_id!r} (step {step_id!r}) {status}{why}")


@dataclass(frozen=True)
class WorkflowDef:
    """A registered workflow: its name, version and function."""

    name: str
    version: str
    fn: WorkflowFn


class WorkflowRegistry:
    """Workflows by name and version; the latest registered version is the default."""

    def __init__(self) -> None:
        self._defs: dict[tuple[str, str], WorkflowDef] = {}
        self._latest: dict[str, WorkflowDef] = {}

    def register(self, name: str, fn: WorkflowFn, version: str = "1") -> WorkflowDef:
        """Register `fn` as `name@version`; registering the same pair again replaces it."""
        if not name:
            raise ValueError("a workflow needs a non-empty name")
        definition = WorkflowDef(name, str(version), fn)
        self._defs[(name, definition.version)] = definition
        self._latest[name] = definition
        return definition

    def workflow(self, name: str, *, version: str = "1") -> Callable[[F], F]:
        """Decorator form of `register`."""

        def deco(fn: F) -> F:
            self.register(name, fn, version)
            return fn

        return deco

    def get(self, name: str, version: str | None = None) -> WorkflowDef:
        """The definition, or `UnknownWorkflow` naming what was asked and what exists."""
        found = self._latest.get(name) if version is None else self._defs.get((name, version))
        if found is None:
            known = [f"{n}@{v}" for n, v in sorted(self._defs)]
            raise UnknownWorkflow(name, version, known)
        return found

    def names(self) -> list[str]:
        return sorted(self._latest)


default_registry = WorkflowRegistry()
"""The registry `@workflow` writes to and `Engine` uses when given none."""


def workflow(name: str, version: str = "1", *,
             registry: WorkflowRegistry | None = None) -> Callable[[F], F]:
    """Register a plain function `(ctx, input) -> result` as workflow `name`."""
    return (registry or default_registry).workflow(name, version=str(version))
