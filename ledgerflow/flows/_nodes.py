"""The nodes of a declarative flow, and how each runs on the engine's `Context`.

Each node calls exactly the `Context` method a hand-written workflow would call, with
the op id it would use, so a flow's history is the history of its code-first twin:

| node | what it calls |
|---|---|
| `step(name, fn)` | `ctx.step(name, lambda: fn(fctx), **options)` |
| `parallel(name, {b: fn})` | `ctx.parallel(name, {b: Branch(lambda: fn(fctx), compensate)})` |
| `route(name, resolver, {b: sub})` | `b = ctx.step(name, lambda: resolver(fctx))`; `sub` |
| `loop(name, fn, ...)` | `ctx.step(f"{name}#{i}", lambda: fn(fctx, value))` for i = 1, 2, ... |
| `sleep(name, d)` | `ctx.sleep(name, d)` |
| `wait_for_signal(name)` | `ctx.wait_for_signal(name, timeout=...)` |
| `child(name, wf, map_input)` | `ctx.child(name, wf, map_input(fctx))` (default: the run's input) |

A route's decision is journaled as a step (its result: the branch's name), so a
resolver may ask something outside (a classifier, a model) and replay still takes the
same branch. A loop's `until(result, iteration)` and `feedback(result)` and a child's
`map_input(fctx)` run in the workflow, on journaled values: they must be pure.
Every node's result is kept in `fctx.results[name]` (a loop's: its last iteration's;
a route's: the branch taken); a sleep has none.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ledgerflow.domain.events import ErrorInfo
from ledgerflow.runtime.context import Context
from ledgerflow.runtime.errors import StepFailed
from ledgerflow.runtime.parallel import Branch


@dataclass
class FlowContext:
    """What a flow's handlers receive: the run's `input` and the `results` so far (node
    name -> result), with the run's id and workflow."""

    input: Any
    results: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    workflow_id: str = ""


class Node(ABC):
    """One node of a flow: it runs on a `Context` and checks its own definition."""

    name: str

    @abstractmethod
    def run(self, ctx: Context, fctx: FlowContext) -> None:
        """Run the node (journaled through `ctx`), keeping its result in `fctx.results`."""

    def check(self) -> list[str]:
        """What is wrong with this node's definition (empty: nothing)."""
        return []

    def subflows(self) -> Mapping[str, SubFlow]:
        """The flows nested in this node (a route's branches)."""
        return {}


@dataclass(frozen=True)
class SubFlow:
    """A route's branch: a flow's nodes, run inline in the parent's run."""

    name: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class FlowSpec:
    """A checked, frozen flow definition: what runs and what is drawn."""

    name: str
    version: str
    nodes: tuple[Node, ...]
    description: str | None = None


def _not_callable(what: str, value: Any) -> list[str]:
    return [] if callable(value) else [f"{what} must be callable, not {type(value).__name__}"]


@dataclass(frozen=True)
class StepNode(Node):
    name: str
    fn: Callable[[FlowContext], Any]
    options: Mapping[str, Any] = field(default_factory=dict)

    def run(self, ctx: Context, fctx: FlowContext) -> None:
        fctx.results[self.name] = ctx.step(self.name, functools.partial(self.fn, fctx),
                                           **self.options)

    def check(self) -> list[str]:
        return _not_callable(f"step {self.name!r}: its function", self.fn)


@dataclass(frozen=True)
class ParallelNode(Node):
    name: str
    branches: Mapping[str, Branch]
    max_concurrency: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def run(self, ctx: Context, fctx: FlowContext) -> None:
        specs = {b: Branch(functools.partial(spec.fn, fctx), spec.compensate)
                 for b, spec in self.branches.items()}
        fctx.results[self.name] = ctx.parallel(self.name, specs,
                                               max_concurrency=self.max_concurrency,
                                               **self.options)

    def check(self) -> list[str]:
        where = f"parallel {self.name!r}"
        found = [] if self.branches else [f"{where} has no branches"]
        for branch, spec in self.branches.items():
            found += _not_callable(f"{where}: branch {branch!r}", spec.fn)
        limit = self.max_concurrency
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            found.append(f"{where}: max_concurrency must be a positive int, got {limit!r}")
        return found


class UnknownBranch(Exception):
    """A route's resolver named a branch the route does not have."""


@dataclass(frozen=True)
class RouteNode(Node):
    name: str
    resolver: Callable[[FlowContext], str]
    branches: Mapping[str, SubFlow]
    options: Mapping[str, Any] = field(default_factory=dict)

    def run(self, ctx: Context, fctx: FlowContext) -> None:
        options = dict(self.options)
        options["non_retryable"] = (*options.get("non_retryable", ()), UnknownBranch)
        chosen = ctx.step(self.name, functools.partial(self._resolve, fctx), **options)
        fctx.results[self.name] = chosen
        if chosen not in self.branches:  # journaled by an older definition
            raise UnknownBranch(self._unknown(chosen))
        for node in self.branches[chosen].nodes:
            node.run(ctx, fctx)

    def _resolve(self, fctx: FlowContext) -> str:
        chosen = self.resolver(fctx)
        if not isinstance(chosen, str) or chosen not in self.branches:
            raise UnknownBranch(self._unknown(chosen))
        return chosen

    def _unknown(self, chosen: Any) -> str:
        return (f"route {self.name!r} chose {chosen!r}, which is not one of its branches "
                f"({', '.join(map(repr, self.branches))})")

    def check(self) -> list[str]:
        found = _not_callable(f"route {self.name!r}: its resolver", self.resolver)
        return found + ([] if self.branches else [f"route {self.name!r} has no branches"])

    def subflows(self) -> Mapping[str, SubFlow]:
        return self.branches


class LoopExhausted(StepFailed):
    """A loop reached `max_iterations` and its `until` never held: the loop step fails."""

    def __init__(self, name: str, max_iterations: int) -> None:
        message = (f"loop {name!r} reached max_iterations={max_iterations} and its until() "
                   "never held")
        super().__init__(name, ErrorInfo(type="LoopExhausted", message=message, step_id=name),
                         max_iterations)
        self.args = (message,)


@dataclass(frozen=True)
class LoopNode(Node):
    name: str
    fn: Callable[[FlowContext, Any], Any]
    max_iterations: int | None
    until: Callable[[Any, int], bool] | None
    feedback: Callable[[Any], Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def run(self, ctx: Context, fctx: FlowContext) -> None:
        assert self.max_iterations is not None and self.until is not None  # checked
        value = fctx.input
        for iteration in range(1, self.max_iterations + 1):
            result = ctx.step(f"{self.name}#{iteration}",
                              functools.partial(self.fn, fctx, value), **self.options)
            fctx.results[self.name] = result
            if self.until(result, iteration):
                return
            value = self.feedback(result) if self.feedback is not None else result
        raise LoopExhausted(self.name, self.max_iterations)

    def check(self) -> list[str]:
        where = f"loop {self.name!r}"
        found = _not_callable(f"{where}: its function", self.fn)
        limit = self.max_iterations
        if limit is None:
            found.append(f"{where} needs max_iterations= (a positive int): a loop must end")
        elif not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            found.append(f"{where}: max_iterations must be a positive int, got {limit!r}")
        if self.until is None:
            found.append(f"{where} needs until=(result, iteration) -> bool")
        else:
            found += _not_callable(f"{where}: until", self.until)
        if self.feedback is not None:
            found += _not_callable(f"{where}: feedback", self.feedback)
        return found


@dataclass(frozen=True)
class SleepNode(Node):
    name: str
    duration: timedelta

    def run(self, ctx: Context, fctx: FlowContext) -> None:
        ctx.sleep(self.name, self.duration)

    def check(self) -> list[str]:
        if isinstance(self.duration, timedelta) and self.duration >= timedelta(0):
            return []
        return [f"sleep {self.name!r}: duration must be a non-negative timedelta, "
                f"got {self.duration!r}"]


@dataclass(frozen=True)
class SignalNode(Node):
    name: str
    timeout: timedelta | None = None

    def run(self, ctx: Context, fctx: FlowContext) -> None:
        fctx.results[self.name] = ctx.wait_for_signal(self.name, timeout=self.timeout)

    def check(self) -> list[str]:
        if self.timeout is None or isinstance(self.timeout, timedelta):
            return []
        return [f"signal {self.name!r}: timeout must be a timedelta, got {self.timeout!r}"]


@dataclass(frozen=True)
class ChildNode(Node):
    name: str
    workflow: str
    map_input: Callable[[FlowContext], Any] | None = None

    def run(self, ctx: Context, fctx: FlowContext) -> None:
        data = fctx.input if self.map_input is None else self.map_input(fctx)
        fctx.results[self.name] = ctx.child(self.name, self.workflow, data)

    def check(self) -> list[str]:
        found = [] if isinstance(self.workflow, str) and self.workflow else [
            f"child {self.name!r}: workflow must be a workflow's name or a flow, "
            f"got {self.workflow!r}"]
        if self.map_input is not None:
            found += _not_callable(f"child {self.name!r}: map_input", self.map_input)
        return found
