"""Scratch PostgreSQL databases for tests: made on the server at PARLEY_TEST_DATABASE_URL, dropped
after. Callers `pytest.importorskip("asyncpg")` first; asyncpg is imported here only when used."""

from __future__ import annotations

import os
import secrets

ADMIN_URL = os.environ.get("PARLEY_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead (its query string kept)."""
    base, _, tail = url.rpartition("/")
    query = tail.partition("?")[2]
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def create_database(prefix: str) -> str:
    import asyncpg

    name = f"{prefix}_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    import asyncpg

    # FORCE: a server or node that failed to stop must not keep the database alive
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
