"""How values read on the dashboard: times, durations, JSON, status marks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

STATUS_MARKS = {"pending": "○", "running": "▶", "suspended": "‖", "compensating": "↺",
                "completed": "✓", "failed": "✗", "canceled": "⊘",
                "published": "✓", "dead": "✗", "discarded": "⊘",
                "active": "▶", "paused": "‖"}
"""A shape beside each status word, so a status reads without colour too."""


def when(moment: datetime | None) -> str:
    """A time as UTC, to the millisecond (`2026-01-02 03:04:05.678Z`)."""
    if moment is None:
        return ""
    return moment.isoformat(sep=" ", timespec="milliseconds")[:23] + "Z"


def pretty(value: Any) -> str:
    """A JSON value, indented."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str).decode()


def seconds(value: float | None) -> str:
    """A duration in the unit that reads best (`850 ms`, `12.4 s`, `3 min 5 s`)."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(int(value), 60)
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
