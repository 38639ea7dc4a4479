"""Authoring API: `@workflow` and the registry of workflow definitions.

A workflow may declare its input (and output) as a pydantic model: `@workflow("pay",
input=Payment)`. A trigger validates the input before anything is appended
(`WorkflowDef.check_input`, `InvalidInput` listing pydantic's errors); the store keeps
the JSON data as given, and every execution, replays included, validates it into the
model and hands the function the instance (`WorkflowDef.call`). `describe()` is what
`GET /api/workflows` and `ledgerflow workflows` list.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from ledgerflow.domain.errors import InvalidInput, UnknownWorkflow
from ledgerflow.domain.schedules import DEFAULT_CATCHUP_SECONDS, Overlap, ScheduleSpec
from ledgerflow.domain.wire import WireRecord, camel_keys, wire_record
from ledgerflow.runtime.queues import DEFAULT_QUEUE, Queue, valid_name

WorkflowFn = Callable[[Any, Any], Any]
"""`(ctx, input) -> result`, or `async def` (then `ctx` is a `ledgerflow.AsyncContext`);
`ctx` is a `ledgerflow.Context` (typed loosely here so the registry does not depend on the
runtime that executes what it holds)."""
F = TypeVar("F", bound=WorkflowFn)
Model = type[BaseModel]
RerunSafety = Literal["safe", "unsafe"]
"""Whether a second run of a workflow with the same input is harmless (`safe`, the
default) or repeats effects that must not happen twice unasked (`unsafe`: a rerun needs
confirmation, `RerunNotConfirmed` otherwise)."""


@dataclass(frozen=True)
class Cron:
    """`@workflow(..., schedule=Cron("*/5 * * * *", timezone="Europe/Paris"))`: start a
    run of the workflow at each fire time of the cron expression, read in `timezone`
    (daylight saving included). `input`: the runs' input; `overlap`: what a fire does
    while the previous run still goes (`skip`, `buffer_one`, `allow`);
    `catchup_window`: fires missed for longer than this (nothing ran) are skipped.
    The schedule's id is the workflow's name; `serve` and `worker` create or update it
    as they start."""

    expression: str
    timezone: str = "UTC"
    input: Any = None
    overlap: Overlap = "skip"
    catchup_window: timedelta = timedelta(seconds=DEFAULT_CATCHUP_SECONDS)

    def __post_init__(self) -> None:
        self.spec("-")  # a bad expression, zone or option fails where it is written

    def spec(self, workflow_id: str) -> ScheduleSpec:
        return ScheduleSpec(workflow_id=workflow_id, input=self.input, cron=self.expression,
                            timezone=self.timezone, overlap=self.overlap,
                            catchup_window_seconds=_seconds(self.catchup_window)).check()


@dataclass(frozen=True)
class Every:
    """`@workflow(..., schedule=Every(timedelta(minutes=5)))`: a run every interval,
    at whole multiples of it since the Unix epoch (whole seconds); options as `Cron`."""

    interval: timedelta
    input: Any = None
    overlap: Overlap = "skip"
    catchup_window: timedelta = timedelta(seconds=DEFAULT_CATCHUP_SECONDS)

    def __post_init__(self) -> None:
        self.spec("-")

    def spec(self, workflow_id: str) -> ScheduleSpec:
        return ScheduleSpec(workflow_id=workflow_id, input=self.input,
                            every_seconds=_seconds(self.interval), overlap=self.overlap,
                            catchup_window_seconds=_seconds(self.catchup_window)).check()


Schedule = Cron | Every


def _seconds(span: timedelta) -> int:
    if not isinstance(span, timedelta) or span.total_seconds() % 1:
        raise ValueError(f"a schedule's interval and catch-up window are whole seconds, "
                         f"as a timedelta; got {span!r}")
    return int(span.total_seconds())


@dataclass(frozen=True)
class WorkflowDef:
    """A registered workflow: its name, version and function, and the pydantic models
    of its input and output when it declares them."""

    name: str
    version: str
    fn: WorkflowFn
    input_model: Model | None = None
    output_model: Model | None = None
    rerun_safety: RerunSafety = "safe"
    schedule: Schedule | None = None
    retention: timedelta | None = None
    """How long its finished runs stay in the store before they are archived."""
    queue: str = DEFAULT_QUEUE
    """The queue its runs go to unless a trigger names another."""
    input_check: Callable[[Any], None] | None = None
    """Raises `InvalidInput` for an input it refuses, after the input model (if any):
    a workflow served by a handler elsewhere is checked there (`remote`)."""

    @property
    def description(self) -> str | None:
        """The function's docstring (a callable object's own `__doc__`, not its class's)."""
        fn = self.fn
        if inspect.isroutine(fn):
            return inspect.getdoc(fn)
        own = getattr(fn, "__dict__", {}).get("__doc__")
        return inspect.cleandoc(own) if isinstance(own, str) else None

    def check_input(self, value: Any) -> Any:
        """The input to store for a new run: `value` (a model instance as its JSON
        data), after the input model accepted it; `InvalidInput` when it does not."""
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if self.input_model is not None:
            try:
                self.input_model.model_validate(value)
            except ValidationError as error:
                raise InvalidInput(f"{self.name}@{self.version}", _problems(error)) from None
        if self.input_check is not None:
            self.input_check(value)
        return value

    def call(self, ctx: Any, stored: Any) -> Any:
        """Run the function on a run's stored input (validated into the input model, if
        any); its result as JSON data (a model, or what the output model makes of it,
        dumped)."""
        result = self.fn(ctx, self._input(stored))
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError(
                f"workflow {self.name!r} is a plain `def` but returned {type(result).__name__}"
                " to await: a sync workflow cannot await; declare it `async def` (its ctx "
                "calls are then awaited)")
        return self._output(result)

    @property
    def is_async(self) -> bool:
        """Whether the function is `async def` (it runs as a coroutine, `await ctx...`)."""
        return is_async_callable(self.fn)

    async def call_async(self, ctx: Any, stored: Any) -> Any:
        """`call`, for an `async def` function: awaited."""
        return self._output(await self.fn(ctx, self._input(stored)))

    def _input(self, stored: Any) -> Any:
        return stored if self.input_model is None else self.input_model.model_validate(stored)

    def _output(self, result: Any) -> Any:
        if self.output_model is not None:
            result = self.output_model.model_validate(result)
        return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


def is_async_callable(fn: Any) -> bool:
    """Whether calling `fn` gives a coroutine: an `async def`, a partial of one, or an
    object whose class's `__call__` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    return callable(fn) and not inspect.isroutine(fn) and inspect.iscoroutinefunction(
        type(fn).__call__)


def _problems(error: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as JSON: where (from "input" down), what, and its type."""
    return [{"loc": ["input", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False)]


@wire_record
@dataclass(frozen=True, slots=True)
class WorkflowInfo(WireRecord):
    """A registered workflow as `GET /api/workflows` lists it: its versions (the last
    is the default), and of that version its kind (`code`, or `flow`: built with
    `ledgerflow.flow()`, it has a graph), description (docstring) and the JSON schemas
    of input and output (null: untyped). `queue` and `schedule` are null until
    workflows can name them (`queue`: the workflow's default queue)."""

    name: str
    versions: list[str]
    kind: str
    description: str | None
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    queue: str | None = None
    schedule: dict[str, Any] | None = None
    rerun_safety: RerunSafety = "safe"

    @classmethod
    def of(cls, versions: list[WorkflowDef], kind: str = "code") -> WorkflowInfo:
        latest = versions[-1]
        schedule = None if latest.schedule is None else camel_keys(
            latest.schedule.spec(latest.name).model_dump(mode="json", exclude={"workflow_id"}))
        return cls(latest.name, [d.version for d in versions], kind, latest.description,
                   _schema(latest.input_model), _schema(latest.output_model), latest.queue,
                   rerun_safety=latest.rerun_safety, schedule=schedule)


def _schema(model: Model | None) -> dict[str, Any] | None:
    return None if model is None else model.model_json_schema()


class WorkflowRegistry:
    """Workflows by name and version; the latest registered version is the default."""

    def __init__(self) -> None:
        self._defs: dict[tuple[str, str], WorkflowDef] = {}
        self._latest: dict[str, WorkflowDef] = {}
        self._queues: dict[str, Queue] = {}

    def add_queue(self, queue: Queue) -> Queue:
        """Declare a queue and its default limits in code (the store keeps run-time
        changes; see `ledgerflow.runtime.queues`)."""
        if not isinstance(queue, Queue):
            raise TypeError(f"add_queue takes a ledgerflow.Queue, got {queue!r}")
        valid_name(queue.name)
        queue.settings()
        self._queues[queue.name] = queue
        return queue

    def queues(self) -> list[Queue]:
        """The queues declared in code, by name."""
        return [self._queues[name] for name in sorted(self._queues)]

    def register(self, name: str, fn: WorkflowFn, version: str = "1", *,
                 input: Model | None = None, output: Model | None = None,
                 rerun_safety: RerunSafety = "safe",
                 schedule: Schedule | None = None,
                 retention: timedelta | None = None,
                 queue: str | Queue | None = None,
                 input_check: Callable[[Any], None] | None = None) -> WorkflowDef:
        """Register `fn` as `name@version`; registering the same pair again replaces it.
        `input` / `output`: pydantic models of the workflow's input and result;
        `input_check`: raises `InvalidInput` for an input it refuses (after `input`);
        `rerun_safety`: see `RerunSafety`; `schedule`: a `Cron` or `Every` that starts
        runs of it; `retention`: how long its finished runs stay before they are
        archived; `queue`: its runs' default queue (a `Queue` is declared too)."""
        if not name:
            raise ValueError("a workflow needs a non-empty name")
        if rerun_safety not in get_args(RerunSafety):
            raise ValueError(f"rerun_safety of workflow {name!r} must be 'safe' or 'unsafe', "
                             f"got {rerun_safety!r}")
        if retention is not None and (not isinstance(retention, timedelta)
                                      or retention <= timedelta(0)):
            raise ValueError(f"retention= of workflow {name!r} must be a positive timedelta, "
                             f"got {retention!r}")
        for what, model in (("input", input), ("output", output)):
            if model is not None and not (isinstance(model, type)
                                          and issubclass(model, BaseModel)):
                raise TypeError(f"{what}= of workflow {name!r} must be a pydantic model "
                                f"class, got {model!r}")
        if schedule is not None and not isinstance(schedule, Cron | Every):
            raise TypeError(f"schedule= of workflow {name!r} must be a Cron or an Every, "
                            f"got {schedule!r}")
        if isinstance(queue, Queue):
            queue = self.add_queue(queue).name
        definition = WorkflowDef(name, str(version), fn, input, output, rerun_safety,
                                 schedule, retention,
                                 valid_name(queue) if queue is not None else DEFAULT_QUEUE,
                                 input_check)
        self._defs.pop((name, definition.version), None)  # replaced: now the latest, last
        self._defs[(name, definition.version)] = definition
        self._latest[name] = definition
        return definition

    def workflow(self, name: str, *, version: str = "1", input: Model | None = None,
                 output: Model | None = None,
                 rerun_safety: RerunSafety = "safe",
                 schedule: Schedule | None = None,
                 retention: timedelta | None = None,
                 queue: str | Queue | None = None) -> Callable[[F], F]:
        """Decorator form of `register`."""

        def deco(fn: F) -> F:
            self.register(name, fn, version, input=input, output=output,
                          rerun_safety=rerun_safety, schedule=schedule, retention=retention,
                          queue=queue)
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

    def retention(self) -> dict[str, timedelta]:
        """The retention each workflow declares (its latest version's), by name."""
        return {name: found.retention for name, found in sorted(self._latest.items())
                if found.retention is not None}

    def describe(self, kind: Callable[[WorkflowDef], str] | None = None,
                 ) -> list[WorkflowInfo]:
        """Every registered workflow, by name; versions in the order registered, the
        default (latest) last. `kind(definition)`: what kind the latest is (default
        "code"; `ledgerflow.flows.kind` knows flows)."""
        by_name: dict[str, list[WorkflowDef]] = {}
        for definition in self._defs.values():
            by_name.setdefault(definition.name, []).append(definition)
        return [WorkflowInfo.of(found, "code" if kind is None else kind(found[-1]))
                for found in (by_name[name] for name in sorted(by_name))]


default_registry = WorkflowRegistry()
"""The registry `@workflow` writes to and `Engine` uses when given none."""


def workflow(name: str, version: str = "1", *, registry: WorkflowRegistry | None = None,
             input: Model | None = None, output: Model | None = None,
             rerun_safety: RerunSafety = "safe",
             schedule: Schedule | None = None,
             retention: timedelta | None = None,
             queue: str | Queue | None = None) -> Callable[[F], F]:
    """Register a plain function `(ctx, input) -> result` as workflow `name`; with
    `input=Model`, triggers validate the input against the pydantic model first and the
    function receives the model instance (`output=Model`: its result is validated too);
    `rerun_safety="unsafe"`: a rerun of its runs must be confirmed (`confirm=True`).
    `schedule=Cron(...)` or `Every(...)`: `serve` and `worker` start runs of it on that
    schedule (schedule id: the workflow's name); `retention=timedelta(days=30)`: its
    finished runs are archived after 30 days. `queue`: the queue its runs go to (default
    "default"); a `Queue("payments", concurrency=5)` also declares that queue's default
    limits."""
    return (registry or default_registry).workflow(name, version=str(version), input=input,
                                                   output=output, rerun_safety=rerun_safety,
                                                   schedule=schedule, retention=retention,
                                                   queue=queue)
