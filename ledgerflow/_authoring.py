"""Authoring API: `@workflow` and the registry of workflow definitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ledgerflow.domain.errors import UnknownWorkflow

WorkflowFn = Callable[[Any, Any], Any]
"""`(ctx, input) -> result`; `ctx` is a `ledgerflow.Context` (typed loosely here so the
registry does not depend on the runtime that executes what it holds)."""
F = TypeVar("F", bound=WorkflowFn)


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

    def definitions(self) -> list[WorkflowDef]:
        """Every registered definition, by name then version (as registered)."""
        return [self._defs[key] for key in sorted(self._defs)]


default_registry = WorkflowRegistry()
"""The registry `@workflow` writes to and `Engine` uses when given none."""


def workflow(name: str, version: str = "1", *,
             registry: WorkflowRegistry | None = None) -> Callable[[F], F]:
    """Register a plain function `(ctx, input) -> result` as workflow `name`."""
    return (registry or default_registry).workflow(name, version=str(version))
