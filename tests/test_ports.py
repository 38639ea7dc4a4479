"""The house rules of the backend port, checked over the package's source:

- only the event store touches the `events` table: the layers above read events
  through the store (`read_stream`, `read_all`, `Transaction.read_stream` ...);
- only the backend adapters and the one chooser ask which database they run on.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "eventstore", "projections", "outbox", "ledgerflow")
LINKED = {"domain", "eventstore", "projections", "outbox"}  # symlinks under ledgerflow/

ADAPTERS = {"eventstore/postgres.py", "eventstore/sqlite.py", "eventstore/fastpath.py",
            "eventstore/database.py"}
"""The PostgreSQL and SQLite adapters (fastpath: the PostgreSQL one's executor) and the
chooser, `database.backend_for`."""

EXEMPT = {"eventstore/schema.py", "projections/_schema.py", "outbox/_schema.py"}
"""The table definitions: SQLAlchemy's own per-dialect column types, variants and type
hooks."""

SQL_ON_EVENTS = re.compile(r'\b(?:FROM|INTO|JOIN|UPDATE|TABLE)\s+"?events\b')


def _modules() -> dict[str, ast.Module]:
    found: dict[str, ast.Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.parts[0] == "ledgerflow" and len(relative.parts) > 1 \
                    and relative.parts[1] in LINKED:
                continue  # the same files, through ledgerflow/<package> symlinks
            found[relative.as_posix()] = ast.parse(path.read_text(), str(path))
    return found


def _imports(tree: ast.Module) -> set[str]:
    """`module.name` of every `from module import name`, and every `import module`."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_modules_are_found() -> None:
    modules = _modules()
    assert {"eventstore/store.py", "projections/rebuild.py",
            "ledgerflow/runtime/executor.py"} <= set(modules)
    assert not any(name.startswith("ledgerflow/eventstore/") for name in modules)


def test_only_the_event_store_touches_the_events_table() -> None:
    offenders = []
    for name, tree in _modules().items():
        if name.startswith("eventstore/"):
            continue
        if "ledgerflow.eventstore.schema.events" in _imports(tree):
            offenders.append(f"{name}: imports the events table")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and SQL_ON_EVENTS.search(node.value):
                offenders.append(f"{name}:{node.lineno}: SQL on events")
    assert offenders == []


def test_only_the_adapters_and_the_chooser_ask_which_database() -> None:
    offenders = []
    for name, tree in _modules().items():
        if name in ADAPTERS | EXEMPT:
            continue
        imports = _imports(tree)
        for module in ("sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.sqlite",
                       "psycopg", "sqlite3", "ledgerflow.eventstore.database.is_postgres"):
            if any(found == module or found.startswith(module + ".") for found in imports):
                offenders.append(f"{name}: imports {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "name" \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "dialect":
                offenders.append(f"{name}:{node.lineno}: reads dialect.name")
            if isinstance(node, ast.Name | ast.Attribute) \
                    and getattr(node, "id", getattr(node, "attr", None)) == "is_postgres":
                offenders.append(f"{name}:{node.lineno}: is_postgres")
    assert offenders == []
