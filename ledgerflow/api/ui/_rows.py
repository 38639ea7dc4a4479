"""The detail page's long lists, rendered in Python: the event timeline and the step
journal. A run may have thousands of events; a template loop spends most of its time
in per-row attribute lookups and macro calls, so these rows are built with f-strings
and `escape` (every value escaped) and handed to the template as Markup."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape as _escape
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from ledgerflow.api.ui._format import STATUS_MARKS, pretty, seconds, when


def escape(value: Any) -> str:
    """`value` as HTML text (quotes too). `html.escape` on a str: several times
    cheaper per call than markupsafe's `escape`, which builds a Markup object."""
    return _escape(value if isinstance(value, str) else str(value))


if TYPE_CHECKING:
    from ledgerflow.api.ui._steps import StepRow
    from ledgerflow.projections.queries import HistoryEntry


def badge(status: str) -> str:
    """A status as a word, a shape and a colour (the same as the templates' macro)."""
    s = escape(status)
    return (f'<span class="status s-{s}"><span aria-hidden="true">'
            f'{STATUS_MARKS.get(status, "•")}</span> {s}</span>')


def timeline(history: Iterable[HistoryEntry], delivery: Mapping[str, str]) -> Markup:
    """One `<li>` per event: version, time, type, step, delivery; data on expand."""
    return Markup("".join(_event(e, delivery.get(e.event_id)) for e in history))


def _event(e: HistoryEntry, delivered: str | None) -> str:
    step = e.data.get("step_id")
    step_html = f" <code>{escape(step)}</code>" if step else ""
    state = escape(delivered or "none")
    actor = e.metadata.get("actor")
    actor_html = f" · actor {escape(actor)}" if actor else ""
    return (f'<li><details><summary><span class="v">#{e.version}</span> '
            f'<time datetime="{e.recorded_at.isoformat()}">{when(e.recorded_at)}</time> '
            f'<strong class="etype">{escape(e.type)}</strong>{step_html} '
            f'<span class="status s-{state}">{escape(delivered or "no outbox row")}</span>'
            f'</summary><pre class="json">{escape(pretty(e.data))}</pre>'
            f'<p class="muted small">event <code>{escape(e.event_id)}</code> · position '
            f'{e.position}{actor_html}</p></details></li>')


def journal(steps: Iterable[StepRow]) -> Markup:
    """One row per step (and one for its error): status, attempt, duration, bars."""
    return Markup("".join(_step(s) for s in steps))


def _bar(attempt: int, outcome: str, left: float, width: float, took: str) -> str:
    return (f'<span class="bar o-{outcome}" style="left:{left}%;width:{width}%" '
            f'title="attempt {attempt}: {outcome}, {took}">'
            f'<span class="sr-only">attempt {attempt} {outcome} {took}</span></span>')


def _step(s: StepRow) -> str:
    e = s.entry
    bars = "".join(_bar(g.attempt, g.outcome, g.left, g.width, seconds(g.seconds))
                   for g in s.segments)
    row = (f'<tr><th scope="row"><code>{escape(e.step_id)}</code></th>'
           f'<td>{badge(e.status)}</td><td>{e.attempt}</td><td>{seconds(s.duration)}</td>'
           f'<td class="bars-col"><div class="bars">{bars}</div></td></tr>')
    if not e.error:
        return row
    trace = e.error.get("traceback")
    trace_html = f'<pre class="trace">{escape(trace)}</pre>' if trace else ""
    return (row + f'<tr class="step-error"><td></td><td colspan="4"><details><summary>'
            f'{escape(e.error.get("type"))}: {escape(e.error.get("message"))}</summary>'
            f'{trace_html}</details></td></tr>')
