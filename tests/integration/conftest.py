"""Fixtures shared by the agent-side test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.integration.test_agent_support import Sites, serve
from tests.support import Server


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own per module: routing tests must not share agents with other files."""
    yield from serve(tmp_path_factory)


@pytest.fixture
async def sites(agent_server: Server, http: aiohttp.ClientSession) -> AsyncIterator[Sites]:
    made = Sites(agent_server, http)
    yield made
    await made.close()
