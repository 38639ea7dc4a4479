"""`flow(name, version=)`: the declarative builder, its checks, and registration.

A `Flow` collects nodes (each builder method returns the flow, so calls chain).
`register()` (or the decorator form, `@flow(name)` over a function that adds the
nodes) checks the whole definition, freezes it into a `FlowSpec` and registers a
`FlowWorkflow` (the workflow function the engine runs: it runs the nodes on the run's
`Context`, see `_nodes`) in a `WorkflowRegistry`, like `@workflow`. A definition with
mistakes raises `FlowDefinitionError` listing every one of them: duplicate node names
(anywhere in the flow, route branches included: node names are the step ids), a route
branch that is not a flow, a loop without `max_iterations` or `until`, unknown step
options, names with `/` or `#` (the engine's step-id separators).

`flow_spec(definition)` tells a registered flow from a code-first workflow.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from ledgerflow._authoring import WorkflowDef, WorkflowRegistry, default_registry
from ledgerflow.flows._graph import graph, mermaid
from ledgerflow.flows._nodes import (
    ChildNode,
    FlowContext,
    FlowSpec,
    LoopNode,
    Node,
    ParallelNode,
    RouteNode,
    SignalNode,
    SleepNode,
    StepNode,
    SubFlow,
)
from ledgerflow.runtime.context import Context
from ledgerflow.runtime.parallel import Branch


def _keyword_options(method: Callable[..., Any]) -> frozenset[str]:
    return frozenset(p.name for p in inspect.signature(method).parameters.values()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY)


STEP_OPTIONS = _keyword_options(Context.step)
"""What `.step`, `.route` (its resolver's step) and `.loop` (each iteration) accept."""
PARALLEL_OPTIONS = _keyword_options(Context.parallel) - {"max_concurrency"}


class FlowDefinitionError(ValueError):
    """A flow's definition is wrong; the message lists every problem found."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"flow {name!r} is not valid:\n" + "\n".join(f"- {p}"
                                                                      for p in problems))


class FlowWorkflow:
    """The workflow function of a registered flow: runs its nodes on the run's context;
    the run's result is every node's result by name."""

    def __init__(self, spec: FlowSpec) -> None:
        self.spec = spec
        self.__doc__ = spec.description  # the workflow's description (`WorkflowDef`)

    def __call__(self, ctx: Context, input: Any) -> dict[str, Any]:
        fctx = FlowContext(input, {}, ctx.run_id, ctx.workflow_id)
        for node in self.spec.nodes:
            node.run(ctx, fctx)
        return fctx.results


def flow_spec(definition: WorkflowDef) -> FlowSpec | None:
    """The flow a registered workflow was built from; None for a code-first one."""
    fn = definition.fn
    return fn.spec if isinstance(fn, FlowWorkflow) else None


class Flow:
    """A declarative workflow under construction (see the package's docstring)."""

    def __init__(self, name: str, version: str = "1", *, description: str | None = None,
                 registry: WorkflowRegistry | None = None) -> None:
        self.name, self.version, self.description = name, str(version), description
        self._registry = registry
        self._nodes: list[Node] = []
        self._problems: list[str] = []

    def _add(self, node: Node, options: Mapping[str, Any] | None = None,
             allowed: frozenset[str] = frozenset()) -> Flow:
        unknown = sorted(set(options or ()) - allowed)
        if unknown:
            self._problems.append(f"{type(node).__name__.removesuffix('Node').lower()} "
                                  f"{node.name!r}: unknown option(s) {', '.join(unknown)}")
        self._nodes.append(node)
        return self

    def step(self, name: str, fn: Callable[[FlowContext], Any], **options: Any) -> Flow:
        """A step: `fn(fctx)`, with `ctx.step`'s options (retries, timeout, compensate)."""
        return self._add(StepNode(name, fn, options), options, STEP_OPTIONS)

    def parallel(self, name: str, branches: Mapping[str, Callable[[FlowContext], Any] | Branch],
                 *, max_concurrency: int | None = None, **options: Any) -> Flow:
        """Branches `fn(fctx)` (or `Branch(fn, compensate=undo)`) run concurrently."""
        specs = {b: s if isinstance(s, Branch) else Branch(s) for b, s in branches.items()}
        return self._add(ParallelNode(name, specs, max_concurrency, options), options,
                         PARALLEL_OPTIONS)

    def route(self, name: str, resolver: Callable[[FlowContext], str],
              branches: Mapping[str, Flow], **options: Any) -> Flow:
        """`resolver(fctx)` names the branch (a sub-flow) that runs next."""
        subs: dict[str, SubFlow] = {}
        for branch, sub in branches.items():
            if isinstance(sub, Flow):
                subs[branch] = SubFlow(sub.name, tuple(sub._nodes))
                self._problems += [f"route {name!r}, branch {branch!r}: {p}"
                                   for p in sub._problems]
            else:
                self._problems.append(f"route {name!r}: branch {branch!r} names no sub-flow "
                                      f"(got {type(sub).__name__}; use ledgerflow.flow(...))")
        return self._add(RouteNode(name, resolver, subs, options), options, STEP_OPTIONS)

    def loop(self, name: str, fn: Callable[[FlowContext, Any], Any], *,
             max_iterations: int | None = None, until: Callable[[Any, int], bool] | None = None,
             feedback: Callable[[Any], Any] | None = None, **options: Any) -> Flow:
        """`fn(fctx, value)` as steps `name#1`, `name#2`, ... until `until(result,
        iteration)`; `value`: the input, then `feedback(result)` (default: the result).
        Reaching `max_iterations` fails the loop."""
        return self._add(LoopNode(name, fn, max_iterations, until, feedback, options),
                         options, STEP_OPTIONS)

    def sleep(self, name: str, duration: timedelta) -> Flow:
        """A durable sleep."""
        return self._add(SleepNode(name, duration))

    def wait_for_signal(self, name: str, timeout: timedelta | None = None) -> Flow:
        """Wait for signal `name`; its payload is the node's result."""
        return self._add(SignalNode(name, timeout))

    def child(self, name: str, workflow: str | Flow, *,
              map_input: Callable[[FlowContext], Any] | None = None) -> Flow:
        """A child run of `workflow` with input `map_input(fctx)` (default: the input)."""
        target = workflow.name if isinstance(workflow, Flow) else workflow
        return self._add(ChildNode(name, target, map_input))

    # -------------------------------------------------------------- finishing

    def build(self) -> FlowSpec:
        """The checked, frozen definition (`FlowDefinitionError` if it has mistakes)."""
        problems = [*self._problems, *_check(tuple(self._nodes))]
        if not self._nodes:
            problems.append("it has no nodes")
        if not isinstance(self.name, str) or not self.name:
            problems.append("a flow needs a non-empty name")
        if problems:
            raise FlowDefinitionError(self.name, problems)
        return FlowSpec(self.name, self.version, tuple(self._nodes), self.description)

    def register(self, registry: WorkflowRegistry | None = None) -> Flow:
        """Check the flow and register it as workflow `name@version` (in `registry`,
        else the one given to `flow()`, else the default registry)."""
        spec = self.build()
        target = registry or self._registry or default_registry
        target.register(spec.name, FlowWorkflow(spec), spec.version)
        return self

    def __call__(self, define: Callable[[Flow], object]) -> Flow:
        """Decorator form: `define(flow)` adds the nodes, then the flow is registered."""
        define(self)
        return self.register()

    def graph(self) -> dict[str, Any]:
        """The flow's graph: `{nodes, edges}` (see `ledgerflow.flows.graph`)."""
        return graph(self.build())

    def mermaid(self) -> str:
        """The flow's graph as Mermaid flowchart text."""
        return mermaid(self.graph())


def flow(name: str, version: str = "1", *, description: str | None = None,
         registry: WorkflowRegistry | None = None) -> Flow:
    """A declarative workflow builder; `.register()` (or `@flow(name)` over a function
    that adds its nodes) registers it like `@workflow`."""
    return Flow(name, version, description=description, registry=registry)


def walk(nodes: tuple[Node, ...]) -> Iterator[tuple[str, Node]]:
    """Every node, route branches included, with where it is (`"" `: the top)."""
    for node in nodes:
        yield "", node
        for branch, sub in node.subflows().items():
            for where, inner in walk(sub.nodes):
                yield f"route {node.name!r}, branch {branch!r}{where and ', ' + where}", inner


def _check(nodes: tuple[Node, ...]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, str] = {}
    for where, node in walk(nodes):
        place = f" (in {where})" if where else ""
        problems += [f"{p}{place}" for p in _name_problems(node) + node.check()]
        if node.name in seen:
            problems.append(f"duplicate step name {node.name!r}{place}: names are step ids "
                            f"and must be unique in a flow (first used {seen[node.name]})")
        seen.setdefault(node.name, f"in {where}" if where else "at the top")
    return problems


def _name_problems(node: Node) -> list[str]:
    names = [node.name, *(node.branches if isinstance(node, ParallelNode) else ())]
    return [f"{n!r} is not a valid name: use a non-empty string without '/' or '#'"
            for n in names if not isinstance(n, str) or not n or "/" in n or "#" in n]
