"""Versioned schema migrations: `<dialect>/NNNN_name.sql`, applied in order at start-up.

Each file runs once, in one transaction with the row in `schema_migrations` that records it,
so a crash mid-migration leaves the schema at the previous version.
"""

from __future__ import annotations

from importlib import resources


def pending(dialect: str, applied: set[int]) -> list[tuple[int, str, list[str]]]:
    """(version, name, statements) of every migration not yet applied, oldest first."""
    folder = resources.files(__package__).joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version = int(entry.name.split("_", 1)[0])
        if version in applied:
            continue
        statements = [s.strip() for s in entry.read_text().split(";") if s.strip()]
        found.append((version, entry.name, statements))
    return sorted(found)
