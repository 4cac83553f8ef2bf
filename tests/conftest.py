from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support import Server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One demo server for the whole run (licence 1, group 0, one agent); tests make their own customers."""
    srv = Server(tmp_path_factory.mktemp("shared"), "--demo", env={"PARLEY_TOKEN_RATE_PER_MIN": "0"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def demo_agent(server: Server) -> tuple[str, str]:
    line = next(line for line in server.stdout_lines if line.startswith("agent login:"))
    email, password = re.match(r"agent login: (\S+) (\S+)", line).groups()  # type: ignore[union-attr]
    return email, password


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
