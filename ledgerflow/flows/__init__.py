"""Declarative workflows: a builder whose flows run on the same engine as code-first
workflows and can be drawn before they run.

```python
from ledgerflow import flow

checkout = (flow("checkout", version="1")
            .step("reserve", reserve, max_attempts=3, compensate=release)
            .parallel("docs", {"invoice": invoice, "email": email}, max_concurrency=2)
            .route("ship", pick_carrier, {"express": express, "standard": standard})
            .loop("refine", refine, max_iterations=3, until=good_enough)
            .sleep("cool-off", timedelta(minutes=5))
            .wait_for_signal("approval", timeout=timedelta(hours=1))
            .child("remind", "send-reminder", map_input=lambda f: f.input)
            .register())
```

Handlers receive a `FlowContext` (`.input`, `.results`); a loop's handler also gets
the iteration's value. A flow compiles onto `Context` calls with the op ids a
hand-written workflow would use (see `_nodes`), so its history, journal, projections,
outbox messages, replay and resume are those of its code-first twin. The run's result
is `results`: each node's result by name.

`Flow.graph()` / `graph(spec)` give `{nodes, edges}`, `mermaid(graph)` its Mermaid
text, `overlay(graph, entries)` a run's progress on it (see `_graph`, `_overlay`).
`graph_of(registry, name)` finds a registered flow's graph (`NotAFlow` for a
code-first workflow).
"""

from __future__ import annotations

from ledgerflow._authoring import WorkflowDef, WorkflowRegistry
from ledgerflow.domain.errors import LedgerflowError
from ledgerflow.flows._builder import Flow, FlowDefinitionError, FlowWorkflow, flow, flow_spec
from ledgerflow.flows._graph import graph, mermaid
from ledgerflow.flows._nodes import FlowContext, FlowSpec, LoopExhausted, UnknownBranch
from ledgerflow.flows._overlay import history_entries, overlay


class NotAFlow(LedgerflowError):
    """The workflow exists but is code-first: only flows have a static graph."""

    code = "not_a_flow"
    http_status = 409

    def __init__(self, name: str, version: str) -> None:
        self.name, self.version = name, version
        super().__init__(
            f"workflow {name!r} (version {version}) is a code-first workflow (a plain "
            "function): only workflows built with ledgerflow.flow() have a graph")

    def details(self) -> dict[str, str]:
        return {"workflowId": self.name, "workflowVersion": self.version}


def kind(definition: WorkflowDef) -> str:
    """"flow" for a workflow built with `ledgerflow.flow()` (it has a graph), else
    "code" (`WorkflowRegistry.describe`'s kind)."""
    return "code" if flow_spec(definition) is None else "flow"


def graph_of(registry: WorkflowRegistry, name: str,
             version: str | None = None) -> dict[str, object]:
    """The graph of registered flow `name` (latest version unless `version`):
    `UnknownWorkflow` if there is none, `NotAFlow` if it is code-first."""
    definition = registry.get(name, version)
    spec = flow_spec(definition)
    if spec is None:
        raise NotAFlow(definition.name, definition.version)
    return graph(spec)


__all__ = ["Flow", "FlowContext", "FlowDefinitionError", "FlowSpec", "FlowWorkflow",
           "LoopExhausted", "NotAFlow", "UnknownBranch", "flow", "flow_spec", "graph",
           "graph_of", "history_entries", "kind", "mermaid", "overlay"]
