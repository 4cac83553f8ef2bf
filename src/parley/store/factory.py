"""Pick the Store implementation a database URL names."""

from __future__ import annotations

from pathlib import Path

from parley.store.base import Store


def open_store(data_dir: Path, database_url: str | None, *, serving: bool = False) -> Store:
    """serving: the store of a `parley serve` node (a SQLite file then admits no second server)."""
    if database_url and database_url.startswith(("postgres://", "postgresql://")):
        # Imported here so SQLite users need no asyncpg installed.
        try:
            from parley.store.postgres import PostgresStore
        except ImportError as exc:
            raise SystemExit(f"parley: a postgresql:// --database-url needs asyncpg: {exc}") from None
        return PostgresStore(database_url)
    if database_url and database_url.startswith("sqlite:///"):
        from parley.store.sqlite import SqliteStore

        return SqliteStore(Path(database_url.removeprefix("sqlite:///")), serving=serving)
    if database_url:
        raise SystemExit(f"parley: unsupported --database-url {database_url!r}")
    from parley.store.sqlite import SqliteStore

    return SqliteStore(data_dir / "parley.db", serving=serving)
