"""Failures as they are journaled: `error_info(exc)` with the traceback of the user's code.

A stored error names the exception's class and message and, when the user's code is on
the stack, carries `traceback`: the formatted traceback (with its chained causes) with
ledgerflow's own frames left out (the executor, the context, the attempt runner), so
it points at the line to fix. Library frames the user's code called stay. A traceback
longer than `MAX_TRACEBACK` characters keeps its end (the innermost frames and the
exception). `json_roundtrip` says what a value will read back as from the journal (or why it
cannot be stored). Nothing here does I/O.
"""

from __future__ import annotations

import functools
import json
import math
import os
import traceback as tb
from pathlib import Path
from typing import Any

import orjson

from ledgerflow.domain import events as ev

MAX_TRACEBACK = 8_000
"""Characters of a stored traceback (its end is kept)."""

_PACKAGE = Path(__file__).resolve().parents[1]
# `ledgerflow.domain` and its siblings may be symlinks to top-level folders (a source
# checkout): their real paths are ledgerflow's too.
_OWN = tuple(sorted({str(_PACKAGE)} | {
    str(p.resolve()) for p in _PACKAGE.iterdir() if p.is_dir() and p.is_symlink()}))


@functools.lru_cache(maxsize=4096)
def _ours(filename: str) -> bool:
    real = os.path.realpath(filename)
    return any(real == root or real.startswith(root + os.sep) for root in _OWN)


def user_frames(stack: tb.StackSummary) -> tb.StackSummary:
    """`stack` without ledgerflow's own frames."""
    return tb.StackSummary.from_list([f for f in stack if not _ours(f.filename)])


def user_traceback(exc: BaseException) -> str | None:
    """The traceback of `exc` (and of its causes) trimmed to the user's frames; None
    when no frame of the user's code is in it (an error the engine raised itself)."""
    top = tb.TracebackException.from_exception(exc)
    seen: set[int] = set()
    found = False
    todo = [top]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        item.stack = user_frames(item.stack)
        found = found or bool(item.stack)
        todo.extend(x for x in (item.__cause__, item.__context__) if x is not None)
    return clip("".join(top.format())) if found else None


def stack_text(stack: tb.StackSummary, headline: str) -> str | None:
    """A thread's stack (where it was) as a traceback: the frames below the last of
    ledgerflow's (which started the user's code), without ledgerflow's own."""
    own = [i for i, frame in enumerate(stack) if _ours(frame.filename)]
    frames = user_frames(tb.StackSummary.from_list(stack[own[-1] + 1:] if own else stack))
    if not frames:
        return None
    return clip("Traceback (most recent call last):\n" + "".join(frames.format()) + headline)


def clip(text: str) -> str:
    if len(text) <= MAX_TRACEBACK:
        return text
    return "... (earlier lines left out)\n" + text[-MAX_TRACEBACK:]


def error_info(exc: BaseException, step_id: str | None = None, *,
               where: str | None = None) -> ev.ErrorInfo:
    """The journaled form of an exception, with its user traceback (if any); `where`
    replaces it (a timed-out step: where its code was when it timed out)."""
    # A NUL cannot be stored (see domain.events.nul_in_json); in a message it is shown.
    message = str(exc).replace("\x00", "\\x00")
    trace = where if where is not None else user_traceback(exc)
    return ev.ErrorInfo(type=type(exc).__name__, message=message, step_id=step_id,
                        traceback=None if trace is None else trace.replace("\x00", "\\x00"))


class NotSerializable(Exception):
    """A step result (or error detail) that JSON cannot carry."""


def json_roundtrip(value: Any, what: str,
                   error: type[Exception] = NotSerializable) -> Any:
    """`value` as it will read back from the journal, or `error` saying why it cannot.

    Plain JSON values (dicts with string keys, lists, strings, 64-bit ints, finite
    floats, booleans, None: what steps return nearly always) take orjson, under a
    third of the stdlib's time (2.4 against 8.2 us for a small dict); anything else
    (tuples, big ints, NaN, other keys, types the stdlib refuses) reads back as the
    stdlib's `json` makes it, as always."""
    if _plain(value):
        try:
            data = orjson.dumps(value)
        except orjson.JSONEncodeError:  # an int over 64 bits, a surrogate, deep nesting
            pass
        else:
            if b"\\u0000" not in data:  # else: the stdlib's words for what cannot be kept
                return orjson.loads(data)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise error(
            f"{what} is a {type(value).__name__}, which is not JSON-serialisable ({exc}); "
            "use dicts, lists, strings, numbers, booleans or None") from None
    reason = ev.unstorable_json(text)
    if reason is not None:
        raise error(f"{what} holds {reason}, which the event store cannot keep")
    return json.loads(text)


def _plain(value: Any) -> bool:
    """True when `value` is made of plain JSON values of exact types (dicts with string
    keys, lists, strings, ints, finite floats, booleans, None), where orjson reads back
    what the stdlib's `json` does, or refuses."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)  # orjson writes NaN and infinities as null
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False
