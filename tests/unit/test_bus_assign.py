"""Routing in a cluster: the routers of several nodes may assign the same waiting thread at once;
`change_members(only_if_unassigned=True)` lets exactly one of them win, in both stores alike.
Uses the store fixtures of the store contract (SQLite always, PostgreSQL when it answers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from parley.protocol.errors import ApiError, ErrorType
from parley.store.base import Store
from parley.store.common import AlreadyAssigned
from tests.unit.test_store_contract import (  # noqa: F401  (fixtures)
    LIMIT,
    PostgresStore,
    anyone,
    licence_and_customer,
    pg_database,
    pg_url,
    store,
)


async def test_only_if_unassigned_refuses_a_thread_with_an_agent(store: Store) -> None:  # noqa: F811
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    chat_id, thread_id = started.chat.id, started.thread.id
    won = await store.change_members(lic, chat_id, ["agent-a"], anyone, thread_id=thread_id, only_if_unassigned=True)
    assert won.added == ["agent-a"] and won.thread is not None and won.thread.agent_id == "agent-a"
    with pytest.raises(AlreadyAssigned) as info:
        await store.change_members(
            lic, chat_id, ["agent-b"], anyone, system=("routing.assigned", "B joined"), thread_id=thread_id,
            only_if_unassigned=True,
        )  # fmt: skip
    # an ApiError the router already treats as "not waiting any more"; nothing changed, no event stored
    assert isinstance(info.value, ApiError) and info.value.kind is ErrorType.CHAT_INACTIVE
    chat = await store.get_chat(lic, chat_id)
    assert chat is not None and chat.agent_ids == ["agent-a"]
    [thread] = await store.get_threads(lic, chat_id, [thread_id])
    assert thread.agent_id == "agent-a" and not thread.queued
    assert (await store.thread_events(lic, [thread_id]))[thread_id] == []
    # without the flag (join, transfer) the same call goes through, as before
    both = await store.change_members(lic, chat_id, ["agent-a", "agent-b"], anyone, thread_id=thread_id)
    assert both.added == ["agent-b"]
    # back in the queue: assignable again
    await store.change_members(lic, chat_id, [], anyone)
    again = await store.change_members(lic, chat_id, ["agent-b"], anyone, thread_id=thread_id, only_if_unassigned=True)
    assert again.thread is not None and again.thread.agent_id == "agent-b"


async def test_two_nodes_assigning_one_thread_at_once(pg_url: str) -> None:  # noqa: F811
    """Two PostgreSQL stores (two nodes) race for each of 20 threads: one winner per thread."""
    nodes = [PostgresStore(pg_url), PostgresStore(pg_url)]
    for node in nodes:
        await node.open()
    try:
        lic, cid = await licence_and_customer(nodes[0])
        threads = [await nodes[0].start_chat(lic, cid, [0], {}, {}, [], 100) for _ in range(20)]

        async def assign(node: Store, agent: str, chat_id: str, thread_id: str) -> Any:
            try:
                return await node.change_members(
                    lic, chat_id, [agent], anyone, system=("routing.assigned", f"{agent} joined"),
                    thread_id=thread_id, only_if_unassigned=True,
                )  # fmt: skip
            except AlreadyAssigned:
                return None

        for started in threads:
            chat_id, thread_id = started.chat.id, started.thread.id
            results = await asyncio.gather(
                assign(nodes[0], "agent-a", chat_id, thread_id), assign(nodes[1], "agent-b", chat_id, thread_id)
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1, results
            chat = await nodes[1].get_chat(lic, chat_id)
            assert chat is not None and chat.agent_ids == winners[0].chat.agent_ids
            events = (await nodes[1].thread_events(lic, [thread_id]))[thread_id]
            assert [e.type for e in events] == ["system_message"]  # the loser stored nothing
    finally:
        for node in nodes:
            await node.close()
