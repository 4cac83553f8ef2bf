"""A realistic session through a real server (SPEC §2, §6, §7): three agents in two groups, twenty
customers starting at once, a queue that fills and drains, messages both ways, internal notes, one
transfer and closes — then every push every connection received is compared with what was sent:
each message reached exactly the people in its chat at that moment, in order, exactly once."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass

from tests.integration.test_agent_support import AgentConn, Conn, CustomerConn, Sites, message

CUSTOMERS = 20
MAX_CHATS = 3
# Customers i with i % 5 in SUPPORT_SLOTS ask for Support (8 of 20); the others ask for Sales (12).
SUPPORT_SLOTS = (1, 3)
ROUNDS = 2


@dataclass
class Sent:
    """One event as sent, and the connections that must get it as `incoming_event`."""

    chat_id: str
    event_id: str
    text: str
    audience: list[Conn]


async def test_realistic_session(sites: Sites) -> None:
    site = await sites(
        groups=["Sales", "Support"],
        agents={"a": (["Sales"], MAX_CHATS), "b": (["Sales"], MAX_CHATS), "c": (["Support"], MAX_CHATS)},
    )
    sales, support = site.groups["Sales"], site.groups["Support"]
    tokens = {key: await site.agent_token(key) for key in ("a", "b", "c")}
    # agent a works with two tabs; b and c with one
    agent_conns: dict[str, list[AgentConn]] = {
        "a": [await site.agent("a", tokens["a"]), await site.agent("a", tokens["a"])],
        "b": [await site.agent("b", tokens["b"])],
        "c": [await site.agent("c", tokens["c"])],
    }
    key_of = {conns[0].id: key for key, conns in agent_conns.items()}
    served_by_group = {sales: {"a", "b"}, support: {"c"}}

    # -- twenty customers start at once -------------------------------------------------
    tokens_c = await asyncio.gather(*(site.customer() for _ in range(CUSTOMERS)))
    customers: list[list[CustomerConn]] = [[conn] for conn in tokens_c]
    for i in range(3):  # a few customers have a second tab
        customers[i].append(await site.customer(customers[i][0].token))
    groups = [support if i % 5 in SUPPORT_SLOTS else sales for i in range(CUSTOMERS)]
    chats = await asyncio.gather(
        *(customers[i][0].start_chat(groups=[groups[i]], text=f"c{i} opens") for i in range(CUSTOMERS))
    )
    chat_ids = [chat["id"] for chat in chats]
    assert len(set(chat_ids)) == CUSTOMERS

    # every customer is either served now or told its place in the queue
    first_agent: list[str | None] = []
    for chat in chats:
        served = [u["id"] for u in chat["users"] if u["type"] == "agent"]
        assert len(served) <= 1
        first_agent.append(key_of[served[0]] if served else None)
    for i, key in enumerate(first_agent):
        if key is None:
            await customers[i][0].wait("queue_position_updated", chat_id=chat_ids[i])
    load = {key: first_agent.count(key) for key in agent_conns}
    assert load == {"a": MAX_CHATS, "b": MAX_CHATS, "c": MAX_CHATS}, first_agent
    assert first_agent.count(None) == CUSTOMERS - 3 * MAX_CHATS
    queued_listed = await agent_conns["a"][0].call(
        "get_chats_summary", {"filters": {"status": "queued"}, "pagination": {"limit": 25}}
    )
    # a sees only the Sales chats among the waiting ones
    waiting_sales = {chat_ids[i] for i, key in enumerate(first_agent) if key is None and groups[i] == sales}
    assert {c["id"] for c in queued_listed["chats_summary"]} == waiting_sales

    # -- the conversations --------------------------------------------------------------
    sent: list[Sent] = []
    served_by: dict[int, list[str]] = defaultdict(list)  # chat index -> agent keys in order
    transfer_chat = min(i for i, key in enumerate(first_agent) if key == "a")
    closed_by: dict[int, Conn] = {}
    in_chat_at_close: dict[int, list[Conn]] = {}

    async def assigned(i: int) -> str:
        key = first_agent[i]
        if key is not None:
            return key
        added = await customers[i][0].wait("chat_user_added", chat_id=chat_ids[i], timeout=12.0)
        return key_of[added["user"]["id"]]

    async def say(i: int, sender: Conn, text: str, agent_key: str, *, note: bool = False) -> None:
        event = message(text, recipients="agents") if note else message(text)
        answer = await sender.call("send_event", {"chat_id": chat_ids[i], "event": event})
        assert answer["event"]["text"] == text
        assert answer["thread_id"] == chats[i]["thread"]["id"]
        everyone: list[Conn] = [*agent_conns[agent_key], *([] if note else customers[i])]
        sent.append(Sent(chat_ids[i], answer["event"]["id"], text, [c for c in everyone if c is not sender]))

    async def converse(i: int) -> None:
        key = await assigned(i)
        served_by[i].append(key)
        assert key in served_by_group[groups[i]], (i, key)
        me, agent = customers[i][0], agent_conns[key][0]
        await agent.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat_ids[i], timeout=5.0)
        for k in range(ROUNDS):
            await say(i, me, f"c{i} asks {k}", key)
            await say(i, agent, f"{key} answers c{i} {k}", key)
        if i % 5 == 0:
            await say(i, agent, f"{key} notes on c{i}", key, note=True)
        if i == transfer_chat:
            await agent.call(
                "transfer_chat",
                {"chat_id": chat_ids[i], "target": {"type": "agent", "ids": [agent_conns["b"][0].id]}, "force": True},
            )
            key = "b"
            served_by[i].append(key)
            agent = agent_conns[key][0]
            await agent.wait("incoming_chat_thread", where=lambda p: p["chat"]["id"] == chat_ids[i], timeout=5.0)
            await say(i, me, f"c{i} after transfer", key)
            await say(i, agent, f"b takes over c{i}", key)
        closer: Conn = me if i % 2 == 0 else agent
        in_chat_at_close[i] = [*agent_conns[key], *customers[i]]
        closed_by[i] = closer
        assert await closer.call("close_thread", {"chat_id": chat_ids[i]}) == {}

    await asyncio.wait_for(asyncio.gather(*(converse(i) for i in range(CUSTOMERS))), 60)

    # -- the queue drained ----------------------------------------------------------------
    a0 = agent_conns["a"][0]
    left = await a0.call("get_chats_summary", {"filters": {"status": "queued"}})
    assert left["chats_summary"] == []
    for i in range(CUSTOMERS):
        positions = [p["queue"]["position"] for p in customers[i][0].pushes("queue_position_updated")]
        if first_agent[i] is not None:
            assert positions == [], (i, positions)
        else:
            assert positions, i
            assert positions == sorted(positions, reverse=True), (i, positions)
            assert len(set(positions)) == len(positions), (i, positions)  # each position told once

    await asyncio.sleep(0.5)  # let the last pushes land

    # -- every message reached exactly its audience, in order, once ------------------------
    all_conns: list[Conn] = [c for conns in agent_conns.values() for c in conns]
    all_conns += [c for tabs in customers for c in tabs]
    expected: dict[int, dict[str, list[str]]] = {id(c): defaultdict(list) for c in all_conns}
    for s in sent:
        for conn in s.audience:
            expected[id(conn)][s.chat_id].append(s.event_id)
    for conn in all_conns:
        got: dict[str, list[str]] = defaultdict(list)
        for p in conn.pushes("incoming_event", where=lambda p: p["event"]["type"] == "message"):
            got[p["chat_id"]].append(p["event"]["id"])
        assert dict(got) == dict(expected[id(conn)]), f"connection of {conn.id}"
    # the pushed events are the stored ones, and a customer never got a note
    by_id = {s.event_id: s for s in sent}
    for tabs in customers:
        for conn in tabs:
            for p in conn.pushes("incoming_event", where=lambda p: p["event"]["type"] == "message"):
                assert p["event"]["recipients"] == "all"
                assert p["event"]["text"] == by_id[p["event"]["id"]].text

    # -- routing pushes: one incoming_chat_thread per serving agent tab, one chat_user_added each
    for i in range(CUSTOMERS):
        for key, conns in agent_conns.items():
            for conn in conns:
                got_threads = conn.pushes("incoming_chat_thread", where=lambda p, i=i: p["chat"]["id"] == chat_ids[i])
                assert len(got_threads) == served_by[i].count(key), (i, key, served_by[i])
                for p in got_threads:
                    assert f"c{i} opens" in [e.get("text") for e in p["chat"]["thread"]["events"]]
        added = [key_of[p["user"]["id"]] for p in customers[i][0].pushes("chat_user_added", chat_id=chat_ids[i])]
        assert added == served_by[i], (i, added, served_by[i])
    removed = customers[transfer_chat][0].pushes("chat_user_removed")
    assert [key_of[p["user_id"]] for p in removed] == ["a"]
    transferred = customers[transfer_chat][0].pushes("chat_transferred")
    assert len(transferred) == 1
    assert transferred[0]["ids"] == [agent_conns["b"][0].id]

    # -- thread_closed: once to everybody in the chat but the closing connection ----------
    for i in range(CUSTOMERS):
        for conn in all_conns:
            got_closed = conn.pushes("thread_closed", chat_id=chat_ids[i])
            should = conn in in_chat_at_close[i] and conn is not closed_by[i]
            assert len(got_closed) == (1 if should else 0), (i, conn.id, got_closed)

    # -- the transcript holds everything, notes included, in order -----------------------
    for i in range(CUSTOMERS):
        reader = a0 if groups[i] == sales else agent_conns["c"][0]
        got = await reader.call("get_chat_threads", {"chat_id": chat_ids[i], "thread_ids": [chats[i]["thread"]["id"]]})
        events = got["chat"]["threads"][0]["events"]
        stored = [e["id"] for e in events if e["type"] == "message"]
        assert stored[1:] == [s.event_id for s in sent if s.chat_id == chat_ids[i]], i
        assert next(e["text"] for e in events if e["type"] == "message") == f"c{i} opens"
        orders = [e["order"] for e in events]
        assert orders == sorted(orders)
        assert len(set(orders)) == len(orders)
