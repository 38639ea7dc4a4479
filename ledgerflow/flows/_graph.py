"""A flow's static graph, as JSON and as Mermaid text, and a run's journal laid over it.

`graph(spec)` -> `{workflow, version, nodes, edges}`. A node is `{id, kind, label}`
plus what its kind tells (`maxAttempts`, `compensate`, `maxConcurrency`,
`maxIterations`, `seconds`, `timeoutSeconds`, `workflow`, `parallel`); ids are the
step ids the run journals (a parallel's branches: `name/branch`), with `__start__` and
`__end__` around them. Kinds: `start`, `end`, `step`, `parallel` (fan-out to its
`branch` nodes, which fan in to what follows), `route` (one `branch` edge per
sub-flow, labelled with the branch's name), `loop` (a `back` edge to itself), `sleep`,
`signal`, `child`. An edge is `{source, target, kind, label}` with kind `next`,
`fanout`, `fanin`, `branch` or `back`.

`overlay(graph, entries)` marks each node `ran`, `failed` or `waiting` (`status`, null
for nodes the run has not reached) from journal entries (`{stepId, status}` dicts, or
the step journal's records); a loop's iterations (`name#n`) mark the loop, a
parallel's branches its fork. `history_entries(events)` derives such entries from a
run's history, waits (sleeps, signals, children, agent rounds) included, which the step
journal does not hold. `mermaid(graph)` draws either, colouring statuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ledgerflow.flows._nodes as n

START, END = "__start__", "__end__"
Graph = dict[str, Any]
Pending = tuple[str, str | None, str]
"""An edge still to draw into the next node: (source, label, kind)."""


class _Drawing:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []

    def node(self, node_id: str, kind: str, label: str, **extra: Any) -> None:
        self.nodes.append({"id": node_id, "kind": kind, "label": label, **extra})

    def edge(self, source: str, target: str, kind: str, label: str | None = None) -> None:
        self.edges.append({"source": source, "target": target, "kind": kind, "label": label})

    def into(self, pending: list[Pending], target: str) -> None:
        for source, label, kind in pending:
            self.edge(source, target, kind, label)

    def sequence(self, nodes: Iterable[n.Node], pending: list[Pending]) -> list[Pending]:
        for node in nodes:
            pending = self.place(node, pending)
        return pending

    def place(self, node: n.Node, pending: list[Pending]) -> list[Pending]:
        """Draw `node` after `pending`; the edges that leave it."""
        name = node.name
        match node:
            case n.ParallelNode():
                most = "" if node.max_concurrency is None else f", max {node.max_concurrency}"
                self.node(name, "parallel", f"{name} (parallel{most})",
                          maxConcurrency=node.max_concurrency)
                self.into(pending, name)
                for branch, spec in node.branches.items():
                    self.node(f"{name}/{branch}", "branch", branch, parallel=name,
                              compensate=spec.compensate is not None)
                    self.edge(name, f"{name}/{branch}", "fanout")
                return [(f"{name}/{branch}", None, "fanin") for branch in node.branches]
            case n.RouteNode():
                self.node(name, "route", f"{name} (route)")
                self.into(pending, name)
                return [out for branch, sub in node.branches.items()
                        for out in self.sequence(sub.nodes, [(name, branch, "branch")])]
            case n.LoopNode():
                self.node(name, "loop", f"{name} (loop, max {node.max_iterations})",
                          maxIterations=node.max_iterations)
                self.into(pending, name)
                self.edge(name, name, "back", "until not met")
                return [(name, None, "next")]
        kind, label, details = _simple(node)
        self.node(name, kind, label, **details)
        self.into(pending, name)
        return [(name, None, "next")]


def _simple(node: n.Node) -> tuple[str, str, dict[str, Any]]:
    """(kind, label, details) of a node drawn as one box."""
    name = node.name
    match node:
        case n.StepNode(options=options):
            return "step", name, {"maxAttempts": options.get("max_attempts", 1),
                                  "compensate": options.get("compensate") is not None}
        case n.SleepNode(duration=duration):
            seconds = duration.total_seconds()
            return "sleep", f"{name} (sleep {_span(seconds)})", {"seconds": seconds}
        case n.SignalNode(timeout=timeout):
            return "signal", f"{name} (signal)", {
                "timeoutSeconds": None if timeout is None else timeout.total_seconds()}
        case n.ChildNode(workflow=workflow):
            return "child", f"{name} (child: {workflow})", {"workflow": workflow}
    raise TypeError(f"cannot draw a {type(node).__name__}")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def graph(spec: n.FlowSpec) -> Graph:
    """The flow's graph (see the module's docstring)."""
    drawing = _Drawing()
    drawing.node(START, "start", "start")
    pending = drawing.sequence(spec.nodes, [(START, None, "next")])
    drawing.node(END, "end", "end")
    drawing.into(pending, END)
    return {"workflow": spec.name, "version": spec.version, "nodes": drawing.nodes,
            "edges": drawing.edges}


# ----------------------------------------------------------------------- Mermaid

_SHAPES = {"start": ('(["', '"])'), "end": ('(["', '"])'), "route": ('{"', '"}'),
           "parallel": ('[["', '"]]'), "loop": ('[["', '"]]'), "sleep": ('("', '")'),
           "signal": ('>"', '"]'), "child": ('[/"', '"/]')}
_STYLES = {"ran": "fill:#d3f9d8,stroke:#2b8a3e", "failed": "fill:#ffe3e3,stroke:#c92a2a",
           "waiting": "fill:#fff3bf,stroke:#e67700"}


def _text(label: str) -> str:
    return label.replace('"', "#quot;")


def mermaid(graph: Graph) -> str:
    """The graph as a Mermaid flowchart; an overlaid graph's statuses are coloured."""
    ids = {node["id"]: f"n{i}" for i, node in enumerate(graph["nodes"])}
    lines = ["flowchart TD"]
    for node in graph["nodes"]:
        opening, closing = _SHAPES.get(node["kind"], ('["', '"]'))
        lines.append(f"    {ids[node['id']]}{opening}{_text(node['label'])}{closing}")
    for edge in graph["edges"]:
        arrow = "-.->" if edge["kind"] == "back" else "-->"
        label = f'|"{_text(edge["label"])}"|' if edge["label"] else ""
        lines.append(f"    {ids[edge['source']]} {arrow}{label} {ids[edge['target']]}")
    marked: dict[str, list[str]] = {}
    for node in graph["nodes"]:
        if node.get("status") in _STYLES:
            marked.setdefault(node["status"], []).append(ids[node["id"]])
    for status, members in marked.items():
        lines.append(f"    classDef {status} {_STYLES[status]}")
        lines.append(f"    class {','.join(members)} {status}")
    return "\n".join(lines) + "\n"
