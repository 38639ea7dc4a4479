"""The branches `Context.parallel` is given: a no-argument callable, or a `Branch` that
also names the compensator that undoes it.

`split` separates what runs (`{branch: callable}`) from what undoes (`{branch:
compensate}`) and checks the concurrency limit; `Context.parallel` gathers a branch's
compensator as soon as the journal holds its result, so a rollback (a later failure,
another branch's last failure, or a compensating cancel) undoes every completed branch,
as it undoes a completed step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Branch:
    """A parallel branch with a compensator: `fn()` runs as the branch (journaled as step
    `name/branch`; in a flow, `fn(fctx)`); `compensate(result)` runs if the run later
    rolls back."""

    fn: Callable[..., Any]
    compensate: Callable[[Any], Any] | None = None


BranchSpec = Callable[[], Any] | Branch
"""What `ctx.parallel` takes per branch."""


def split(branches: Mapping[str, BranchSpec], max_concurrency: int | None
          ) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[Any], Any]]]:
    """({branch: what runs}, {branch: its compensator}) of a parallel's branches."""
    if max_concurrency is not None and (not isinstance(max_concurrency, int)
                                        or max_concurrency < 1):
        raise ValueError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
    calls: dict[str, Callable[[], Any]] = {}
    undo: dict[str, Callable[[Any], Any]] = {}
    for name, spec in branches.items():
        if isinstance(spec, Branch):
            calls[name] = spec.fn
            if spec.compensate is not None:
                undo[name] = spec.compensate
        elif callable(spec):
            calls[name] = spec
        else:
            raise TypeError(f"parallel branch {name!r} must be a callable or a Branch, "
                            f"not {type(spec).__name__}")
    return calls, undo


def newly_done(ids: Mapping[str, str], undo: Mapping[str, Callable[[Any], Any]],
               results: Mapping[str, Any], gathered: set[str]
               ) -> list[tuple[str, Callable[[Any], Any], Any]]:
    """(step id, compensator, result) of each branch with a compensator whose result is
    journaled and not `gathered` yet (it is added to `gathered`)."""
    found = []
    for branch, step_id in ids.items():
        if branch in undo and step_id in results and step_id not in gathered:
            gathered.add(step_id)
            found.append((step_id, undo[branch], results[step_id]))
    return found
