"""PostgreSQL adapter's executor: run a hot Core statement on the psycopg cursor of
its connection (`PostgresBackend.execute` / `execute_all`; PostgreSQL only).

The statements that run on every append (projection rows, outbox rows, the run
queue) cost more CPU in SQLAlchemy's execution layer than in the database: measured
here ~83 us per Core execute against ~34 us on the raw psycopg cursor. `execute`
keeps the statement a Core construct (one definition, one schema), compiles it once
per parameter shape for the connection's dialect, applies the column types' bind
processors, and sends it on the same connection, in the same transaction. (The SQLite adapter
sends the same statements through Core.)

Per compiled shape it keeps the (bind name, bind processor or None) pairs, so a
row's parameters are one dict comprehension (no `construct_params`); one psycopg
cursor per DBAPI connection is reused (a new cursor costs ~10 us of CPU). Nothing
is fetched: statements are compiled as for executemany, so an INSERT renders no
implicit RETURNING.

For statements without Python-side column defaults (those are applied by
SQLAlchemy's execution context, which this path skips).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from ledgerflow.eventstore.backend import Batch, Position

K = TypeVar("K")
V = TypeVar("V")


class _Memo(dict[K, V]):
    """Compiled SQL by statement object: a dict (reads are plain `get`s) that forgets
    its oldest entries past `maxsize`, so a process that builds many stores (each
    with statements of its own) does not keep every one it ever compiled."""

    def __init__(self, maxsize: int = 512) -> None:
        super().__init__()
        self.maxsize = maxsize

    def remember(self, key: K, value: V) -> V:
        if len(self) >= self.maxsize:
            for old in list(self)[: max(len(self) // 4, 1)]:
                del self[old]
        self[key] = value
        return value


_Binds = tuple[tuple[str, Callable[[Any], Any] | None], ...]
_Compiled = tuple[str, _Binds | None, SQLCompiler, dict[str, Callable[[Any], Any]]]
_CACHE: _Memo[tuple[Executable, tuple[str, ...]], _Compiled] = _Memo()
_PARAM = re.compile(r"%\((\w+)\)s")
_MAX_VALUES = 16
_COPY_ROWS = 64
_COPY: _Memo[tuple[Executable, tuple[str, ...]], tuple[str, _Binds] | None] = _Memo()
_VALUE = re.compile(r"%\((\w+)\)s(?:::[A-Z][A-Z ]*)?")
_UNSET: Any = object()
_MULTI: _Memo[tuple[Executable, tuple[str, ...], int], str | None] = _Memo()
_CURSORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def execute(conn: Connection, statement: Executable,
            rows: Sequence[Mapping[str, Any]]) -> None:
    """Execute `statement` once per row (one round trip on PostgreSQL: a pipeline)."""
    if not rows:
        return
    first = tuple(rows[0])
    if len(rows) > 1 and any(tuple(row) != first for row in rows):  # one form per key set
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
        for row in rows:
            groups.setdefault(tuple(row), []).append(row)
        for group in groups.values():
            execute(conn, statement, group)
        return
    entry = _CACHE.get((statement, first))
    if entry is None:
        entry = _CACHE.remember((statement, first), _compile(conn, statement, first))
    sql, binds, compiled, processors = entry
    if binds is not None and 1 < len(rows) <= _MAX_VALUES:
        many = _MULTI.get((statement, first, len(rows)), _UNSET)
        if many is _UNSET:
            many = _MULTI.remember((statement, first, len(rows)),
                                  _multi_values(sql, binds, len(rows)))
        if isinstance(many, str):
            cursor(conn).execute(many, {
                f"r{index}_{name}": row[name] if process is None else process(row[name])
                for index, row in enumerate(rows) for name, process in binds}, prepare=True)
            return
    if binds is not None and len(rows) >= _COPY_ROWS:
        copy = _COPY.get((statement, first), _UNSET)
        if copy is _UNSET:
            copy = _COPY.remember((statement, first), _copy_form(sql, binds))
        if copy is not None:
            command, ordered = copy
            with cursor(conn).copy(command) as out:
                for row in rows:
                    out.write_row([row[name] if process is None else process(row[name])
                                   for name, process in ordered])
            return
    if binds is not None:
        params = [{name: row[name] if process is None else process(row[name])
                   for name, process in binds} for row in rows]
    else:
        params = [_construct(compiled, processors, row) for row in rows]
    cur = cursor(conn)
    if len(params) == 1:
        cur.execute(sql, params[0], prepare=True)
    else:
        cur.executemany(sql, params)


def _compile(conn: Connection, statement: Executable, keys: tuple[str, ...]) -> _Compiled:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(keys),
                                 for_executemany=True)
    assert isinstance(compiled, SQLCompiler)
    # The column types' bind processors, as SQLAlchemy's execution context applies them.
    found: Any = compiled._bind_processors
    processors: dict[str, Callable[[Any], Any]] = dict(found)
    binds: _Binds | None = tuple(
        (name, processors.get(name)) for name in compiled.bind_names.values())
    simple = all(
        name in keys and bind.callable is None and not bind.expanding
        and (bind.required or bind.value is None)
        for bind, name in compiled.bind_names.items())
    if not simple or compiled.escaped_bind_names:
        binds = None  # values from the statement itself: SQLAlchemy's own construct_params
    return compiled.string, binds, compiled, processors


def _copy_form(sql: str, binds: _Binds) -> tuple[str, _Binds] | None:
    """`COPY table (columns) FROM STDIN` for a plain `INSERT ... VALUES (binds)`, with
    the binds in column order; None for any other statement.

    Many rows of a plain INSERT (a rebuild's batches) go through COPY: the same rows,
    defaults and constraints, in the rows' order, at a fraction of an executemany's
    client CPU."""
    head, sep, row = sql.partition(" VALUES (")
    if not sep or not head.startswith("INSERT INTO ") or not row.endswith(")"):
        return None
    by_name = dict(binds)
    ordered: list[tuple[str, Callable[[Any], Any] | None]] = []
    for item in row[:-1].split(", "):
        match = _VALUE.fullmatch(item)
        if match is None or match[1] not in by_name:
            return None
        ordered.append((match[1], by_name[match[1]]))
    return f"COPY {head[len('INSERT INTO '):]} FROM STDIN", tuple(ordered)


def _multi_values(sql: str, binds: _Binds, count: int) -> str | None:
    """A plain `INSERT ... VALUES (...)` for `count` rows at once (binds `r<i>_<name>`).

    One statement instead of an executemany pipeline; the rows' order is kept
    (a serial key is drawn in VALUES order). None for any other statement.
    """
    head, sep, row = sql.partition(" VALUES (")
    if (not sep or not head.startswith("INSERT INTO ") or not row.endswith(")")
            or ")" in row[:-1].replace(")s", "") or "%%" in sql):
        return None
    names = {name for name, _ in binds}
    values = ", ".join(_prefixed("(" + row, f"r{index}_", names) for index in range(count))
    return f"{head} VALUES {values}"


def _construct(compiled: SQLCompiler, processors: dict[str, Callable[[Any], Any]],
               row: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = dict(compiled.construct_params(dict(row)))
    for name, process in processors.items():
        if name in values:
            values[name] = process(values[name])
    return values


def cursor(conn: Connection) -> Any:
    """The reused psycopg cursor of `conn`'s DBAPI connection (for statements whose
    results are read before the next statement runs)."""
    raw: Any = conn.connection.dbapi_connection
    cur = _CURSORS.get(raw)
    if cur is None or cur.closed:
        cur = _CURSORS[raw] = raw.cursor()
    return cur


_Kinds = tuple[tuple[tuple[str, bool], ...], ...] | None
"""Per row, the (key, is text) of each `Position` value; None when there is none."""
_Combined = tuple[str, tuple[tuple[str, _Binds], ...]]
_Shape = tuple[tuple[Executable, tuple[str, ...], int, _Kinds], ...]
_COMBINED: _Memo[_Shape, _Combined | None] = _Memo()
_WITH: _Memo[tuple[Any, _Shape], tuple[str, tuple[str, ...], _Combined] | None] = _Memo()
_RAW_CURSORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def execute_all(conn: Connection, batches: Sequence[Batch]) -> None:
    """Execute each batch in order, as `execute` does.

    When the statements write distinct tables and each batch is one
    row (or a plain INSERT of up to 16 rows, as one multi-row VALUES), they go as
    ONE statement: all but the last as data-modifying CTEs (`WITH s0 AS (...),
    s1 AS (...) <last>`), one round trip instead of several. Sub-statements of one
    statement do not see each other's writes, hence the distinct tables.
    """
    batches = [(statement, rows) for statement, rows in batches if rows]
    combined = None
    if len(batches) > 1:
        shape = _shape(batches)
        if shape is not None:
            combined = _COMBINED.get(shape, _UNSET)
            if combined is _UNSET:
                combined = _COMBINED.remember(shape, _combine(conn, shape))
    if combined is None:
        for statement, rows in batches:
            execute(conn, statement, rows)
        return
    sql, parts = combined
    params: dict[str, Any] = {}
    _fill(params, parts, batches)
    cursor(conn).execute(sql, params, prepare=True)


def statement_with(conn: Connection, key: Any, head: str, params: dict[str, Any],
                   batches: Sequence[Batch], tail: str) -> tuple[str, list[Any]] | None:
    """ONE PostgreSQL statement `WITH <head>, s0 AS (<batch 0>), ... <tail>` and its
    parameters, for `raw_cursor` (`$n` placeholders), or None when the batches cannot
    be combined.

    `head` is CTE text with named parameters (`key` identifies its shape; `params`
    holds their values), `tail` the main query. Every batch becomes a data-modifying
    CTE, run whatever `tail` reads. A `Position` value is computed from the CTE `ins`
    of `head`, which must return `position` and `event_id` of the events it inserts.

    `$n` placeholders because psycopg converts `%(name)s` ones on every execution for
    a statement longer than 4 kB (it caches shorter ones only): ~0.3 ms of CPU for
    this one, as much as the round trips it saves.
    """
    batches = [(statement, rows) for statement, rows in batches if rows]
    shape = _shape(batches, positions=True)
    if shape is None:
        return None
    entry = _WITH.get((key, shape), _UNSET)
    if entry is _UNSET:
        combined = _combine(conn, shape, (head, tail))
        entry = _WITH.remember((key, shape), None if combined is None else (
            *_numbered(combined[0]), combined))
    if entry is None:
        return None
    sql, order, (_, parts) = entry
    _fill(params, parts, batches, positions=True)
    return sql, [params[name] for name in order]


def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with `$n` placeholders for its `%(name)s` ones, and the names in `$n` order."""
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${order.setdefault(match[1], len(order) + 1)}"

    return _PARAM.sub(number, sql), tuple(order)


def raw_cursor(conn: Connection) -> Any:
    """The reused `psycopg.RawCursor` (`$n` placeholders) of `conn`'s DBAPI connection."""
    raw: Any = conn.connection.dbapi_connection
    cur = _RAW_CURSORS.get(raw)
    if cur is None or cur.closed:
        cur = _RAW_CURSORS[raw] = psycopg.RawCursor(raw)
    return cur


def _fill(params: dict[str, Any], parts: tuple[tuple[str, _Binds], ...],
          batches: Sequence[Batch], positions: bool = False) -> None:
    """The parameters of a combined statement (processed as the column types say; a
    `Position` as its event id, plus `<name>__b`/`<name>__a` for its text around)."""
    for (prefix, binds), (_, rows) in zip(parts, batches, strict=True):
        single = len(rows) == 1
        for index, row in enumerate(rows):
            start = prefix if single else f"{prefix}r{index}_"
            for name, process in binds:
                value = row[name]
                if positions and type(value) is Position:
                    params[start + name] = value.event_id
                    if value.before is not None:
                        params[f"{start}{name}__b"] = value.before
                        params[f"{start}{name}__a"] = value.after
                    continue
                params[start + name] = value if process is None else process(value)


def _shape(batches: Sequence[Batch], positions: bool = False) -> _Shape | None:
    """(statement, keys, row count, `Position` kinds) per batch; None if a batch's rows
    differ in keys or are more than a multi-row VALUES takes."""
    shape = []
    for statement, rows in batches:
        keys = tuple(rows[0])
        if len(rows) > _MAX_VALUES or any(tuple(row) != keys for row in rows[1:]):
            return None
        kinds: _Kinds = None
        if positions and Position in {type(value) for row in rows for value in row.values()}:
            kinds = tuple(tuple((name, value.before is not None)
                                for name, value in row.items() if type(value) is Position)
                          for row in rows)
        shape.append((statement, keys, len(rows), kinds))
    return tuple(shape)


def _position_sql(bind: str, text: bool) -> str:
    found = f"(SELECT ins.position FROM ins WHERE ins.event_id = %({bind})s)"
    if not text:
        return found
    return f"(CAST(%({bind}__b)s AS text) || {found} || CAST(%({bind}__a)s AS text))"


def _combine(conn: Connection, shape: _Shape,
             around: tuple[str, str] | None = None) -> _Combined | None:
    """The one-statement form of `shape`, or None when it cannot be combined: with
    `around` (head CTEs, main query) every batch is a CTE between them, else the last
    batch is the main statement."""
    tables = [getattr(statement, "table", None) for statement, _, _, _ in shape]
    if None in tables or len(set(tables)) != len(tables):
        return None
    texts: list[str] = []
    parts: list[tuple[str, _Binds]] = []
    for index, (statement, keys, count, kinds) in enumerate(shape):
        entry = _CACHE.get((statement, keys))
        if entry is None:
            entry = _CACHE.remember((statement, keys), _compile(conn, statement, keys))
        sql, binds = entry[0], entry[1]
        if binds is None or "%%" in sql or "RETURNING" in sql:
            return None
        names = {name for name, _ in binds}
        if count > 1:
            many = _multi_values(sql, binds, count)
            if many is None:
                return None
            sql = many
            names = {f"r{row}_{name}" for row in range(count) for name in names}
        prefix = f"s{index}_"
        sql = _prefixed(sql, prefix, names)
        for row, found in enumerate(kinds or ()):
            for name, text in found:
                bind = f"{prefix}{name}" if count == 1 else f"{prefix}r{row}_{name}"
                sql = sql.replace(f"%({bind})s", _position_sql(bind, text))
        texts.append(sql)
        parts.append((prefix, binds))
    if around is None:
        ctes = ", ".join(f"s{index} AS ({sql})" for index, sql in enumerate(texts[:-1]))
        return f"WITH {ctes} {texts[-1]}", tuple(parts)
    head, tail = around
    ctes = ", ".join([head, *(f"s{index} AS ({sql})" for index, sql in enumerate(texts))])
    return f"WITH {ctes} {tail}", tuple(parts)


def _prefixed(sql: str, prefix: str, names: set[str]) -> str:
    """`sql` with each bind `%(name)s` of `names` renamed `%(<prefix>name)s`."""
    def rename(match: re.Match[str]) -> str:
        return f"%({prefix}{match[1]})s" if match[1] in names else match[0]

    return _PARAM.sub(rename, sql)
