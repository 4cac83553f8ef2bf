"""Pick the Store implementation a database URL names."""

from __future__ import annotations

from pathlib import Path

from parley.store.base import Store


def open_store(data_dir: Path, database_url: str | None) -> Store:
    if database_url and database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("parley: the PostgreSQL store is not available yet; run without --database-url")
    if database_url and database_url.startswith("sqlite:///"):
        from parley.store.sqlite import SqliteStore

        return SqliteStore(Path(database_url.removeprefix("sqlite:///")))
    if database_url:
        raise SystemExit(f"parley: unsupported --database-url {database_url!r}")
    from parley.store.sqlite import SqliteStore

    return SqliteStore(data_dir / "parley.db")
