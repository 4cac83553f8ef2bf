"""The Store contract, run against both implementations: SQLite (a file per test) and PostgreSQL
(one scratch database for the session, a licence per test; dropped at the end).

The same assertions for both stores are what keeps them interchangeable: same records, same
ApiError types and messages, same atomicity. PostgreSQL-only tests at the end cover what only a
shared server has: several stores (nodes) on one database, migrations racing, reconnects.
PostgreSQL tests are skipped when no server answers at PARLEY_TEST_DATABASE_URL
(default postgresql://127.0.0.1:5432/test).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley import ids
from parley.protocol.errors import ApiError, ErrorType
from parley.store.base import Store
from parley.store.records import Chat, NewEvent, StoredFile
from parley.store.sqlite import SqliteStore

asyncpg = pytest.importorskip("asyncpg")

from parley.store.postgres import DatabaseUnavailable, PostgresStore  # noqa: E402
from tests.pg import ADMIN_URL, create_database, drop_database, with_database  # noqa: E402

LIMIT = 10
FOREVER = 2**62


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[str | None]:
    """A scratch database for the whole session (every test makes its own licence in it), or
    None when no PostgreSQL answers. Requested by SQLite runs too, so it must not skip."""
    try:
        name = await create_database("parley_test")
    except (OSError, asyncpg.PostgresError):
        yield None
        return
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        await drop_database(name)


@pytest.fixture
def pg_url(pg_database: str | None) -> str:
    if pg_database is None:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}")
    return pg_database


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    """A database of its own, for tests about what happens to an empty one."""
    try:
        name = await create_database("parley_test_fresh")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}: {exc}")
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        await drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, pg_database: str | None) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "parley.db")
    elif pg_database is None:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}")
    else:
        s = PostgresStore(pg_database)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def anyone(chat: Chat) -> None:
    """An access check that lets everything through."""


def denied(chat: Chat) -> None:
    raise ApiError(ErrorType.NOT_FOUND, "chat not found")


def message(author: str | None, text: str, custom_id: str | None = None) -> NewEvent:
    return NewEvent(type="message", author_id=author, body={"text": text}, custom_id=custom_id)


async def licence_and_customer(store: Store) -> tuple[int, str]:
    lic = await store.create_license("Acme")
    customer = await store.create_customer(lic.id)
    return lic.id, customer.id


async def raises(kind: ErrorType, call: Any, message: str | None = None) -> ApiError:
    with pytest.raises(ApiError) as info:
        await call
    assert info.value.kind is kind, info.value.message
    if message is not None:
        assert info.value.message == message
    return info.value


# -- small things, tenants and people ----------------------------------------------------


async def test_ping(store: Store) -> None:
    await store.ping()


async def test_meta_keeps_the_first_value(store: Store) -> None:
    key = f"key-{secrets.token_hex(4)}"
    assert await store.meta(key, lambda: "one") == "one"
    assert await store.meta(key, lambda: "two") == "one"


async def test_licences(store: Store) -> None:
    lic = await store.create_license("Acme")
    other = await store.create_license("Other")
    assert lic.id > 0 and other.id != lic.id
    assert lic.name == "Acme"
    assert await store.group_ids(lic.id) == {0}
    found = await store.get_license(lic.id)
    assert found is not None and (found.id, found.name, found.organization_id) == (lic.id, "Acme", lic.organization_id)
    assert found.settings == {}
    by_org = await store.get_license_by_org(lic.organization_id)
    assert by_org is not None and by_org.id == lic.id
    assert await store.get_license(10**9) is None
    assert await store.get_license_by_org("no-such-org") is None


async def test_groups(store: Store) -> None:
    lic = await store.create_license("Acme")
    assert await store.create_group(lic.id, "Sales") == 1
    assert await store.create_group(lic.id, "Support") == 2
    assert await store.create_group(lic.id, "Fixed", group_id=7) == 7
    # an existing id is kept as it is
    assert await store.create_group(lic.id, "Again", group_id=7) == 7
    assert await store.create_group(lic.id, "Next") == 8
    assert await store.group_ids(lic.id) == {0, 1, 2, 7, 8}


async def test_agents(store: Store) -> None:
    lic = await store.create_license("Acme")
    g = await store.create_group(lic.id, "Sales")
    bob = await store.create_agent(lic.id, "bob@x.io", "Bob", "hash-b", [g], 3)
    ann = await store.create_agent(lic.id, "ann@x.io", "Ann", "hash-a", [], None)
    assert bob.groups == [0, g] and ann.groups == [0]
    assert (bob.routing_status, bob.max_chats, bob.license_id) == ("accepting_chats", 3, lic.id)
    await raises(
        ErrorType.GROUP_NOT_FOUND, store.create_agent(lic.id, "c@x.io", "C", "h", [5], None), "group 5 does not exist"
    )
    await raises(
        ErrorType.VALIDATION,
        store.create_agent(lic.id, "bob@x.io", "Bob 2", "h", [], None),
        "an agent with email bob@x.io already exists",
    )
    assert [a.email for a in await store.list_agents(lic.id)] == ["ann@x.io", "bob@x.io"]
    found = await store.get_agent_by_email(lic.id, "bob@x.io")
    assert found is not None and found.id == bob.id and found.password_hash == "hash-b" and found.groups == [0, g]
    assert await store.get_agent_by_email(lic.id, "nobody@x.io") is None
    assert [a.id for a in await store.get_agents(lic.id, [bob.id, "missing", ann.id])] == [bob.id, ann.id]
    assert await store.get_agents(lic.id, []) == []
    await store.set_routing_status(lic.id, bob.id, "not_accepting_chats")
    again = await store.get_agent_by_email(lic.id, "bob@x.io")
    assert again is not None and again.routing_status == "not_accepting_chats"
    # another licence sees none of them
    other = await store.create_license("Other")
    assert await store.list_agents(other.id) == []
    assert await store.get_agent_by_email(other.id, "bob@x.io") is None


async def test_customers(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    found = await store.get_customer(lic, cid)
    assert found is not None and found.id == cid and found.created_at > 0 and found.banned_until == 0
    assert await store.get_customer(lic, "missing") is None
    second = await store.create_customer(lic)
    assert {c.id for c in await store.get_customers(lic, [cid, second.id, "missing"])} == {cid, second.id}
    assert await store.get_customers(lic, []) == []

    updated = await store.update_customer(
        lic,
        cid,
        {
            "name": "Ann",
            "email": "ann@x.io",
            "monitoring": {"page": {"url": "https://a", "title": "A"}, "timezone": "Europe/Paris"},
            "properties": {"plan": "gold"},
        },
    )
    assert (updated.name, updated.email, updated.properties) == ("Ann", "ann@x.io", {"plan": "gold"})
    updated = await store.update_customer(lic, cid, {"monitoring": {"page": {"url": "https://b"}}})
    assert updated.monitoring == {"page": {"url": "https://b", "title": "A"}, "timezone": "Europe/Paris"}
    assert updated.name == "Ann"
    await store.update_customer(lic, cid, {"properties": {"seats": "3"}})

    too_many = {f"p{i}": "x" for i in range(100)}
    await raises(ErrorType.VALIDATION, store.update_customer(lic, cid, {"name": "Zed", "properties": too_many}))
    kept = await store.get_customer(lic, cid)
    assert kept is not None and kept.name == "Ann" and kept.properties == {"plan": "gold", "seats": "3"}
    await raises(ErrorType.NOT_FOUND, store.update_customer(lic, "missing", {"name": "x"}))

    await store.ban_customer(lic, cid, 12345)
    banned = await store.get_customer(lic, cid)
    assert banned is not None and banned.banned_until == 12345
    await raises(ErrorType.NOT_FOUND, store.ban_customer(lic, "missing", 1))
    # a customer of one licence does not exist in another
    other = await store.create_license("Other")
    assert await store.get_customer(other.id, cid) is None
    await raises(ErrorType.NOT_FOUND, store.ban_customer(other.id, cid, 1))


async def test_last_seen_never_goes_backwards(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    chat_id = started.chat.id
    assert await store.set_last_seen(lic, cid, chat_id, 1000) == 1000
    assert await store.set_last_seen(lic, cid, chat_id, 500) == 1000
    assert await store.set_last_seen(lic, cid, chat_id, 2000) == 2000
    assert await store.set_last_seen(lic, "agent-1", chat_id, 700) == 700
    assert await store.chat_last_seen(lic, chat_id) == {cid: 2000, "agent-1": 700}
    # without a chat: the user's own last-seen stamp
    assert await store.set_last_seen(lic, cid, None, 3000) == 3000
    assert await store.set_last_seen(lic, cid, None, 10) == 3000
    found = await store.get_customer(lic, cid)
    assert found is not None and found.last_seen_timestamp == 3000
    assert await store.chat_last_seen(lic, chat_id) == {cid: 2000, "agent-1": 700}


# -- chats, threads, events --------------------------------------------------------------


async def test_start_chat(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(
        lic, cid, [0], {"ns": {"a": 1}}, {"t": {"b": 2}}, [message(cid, "one"), message(cid, "two", "c-2")], LIMIT
    )
    chat, thread, events = started.chat, started.thread, started.events
    assert (chat.customer_id, chat.scopes, chat.properties) == (cid, [0], {"ns": {"a": 1}})
    assert chat.active_thread_id == thread.id and chat.threads_count == 1 and chat.agent_ids == []
    assert chat.order == thread.order
    assert thread.active and thread.user_ids == [cid] and thread.properties == {"t": {"b": 2}}
    assert thread.events_count == 2 and thread.closed_at is None
    assert [e.id for e in events] == [f"{thread.id}_1", f"{thread.id}_2"]
    assert thread.order < events[0].order < events[1].order
    assert events[1].custom_id == "c-2" and events[1].body == {"text": "two"} and events[1].recipients == "all"

    assert await store.get_chat(lic, chat.id) == chat
    assert await store.get_chat(lic, "NOSUCHCHAT") is None
    other = await store.create_license("Other")
    assert await store.get_chat(other.id, chat.id) is None
    [stored] = await store.get_threads(lic, chat.id, [thread.id])
    assert stored.id == thread.id and stored.events_count == 2 and stored.properties == {"t": {"b": 2}}
    assert stored.queued  # a new thread waits for an agent
    assert await store.thread_events(lic, [thread.id]) == {thread.id: events}
    assert await store.thread_events(lic, []) == {}


async def test_active_chat_limit_at_the_11th(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    for _ in range(LIMIT):
        await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    error = await raises(ErrorType.LIMIT_REACHED, store.start_chat(lic, cid, [0], {}, {}, [], LIMIT))
    assert error.message == "a customer may have at most 10 active chats"
    assert len(await store.active_chats(lic, cid)) == LIMIT
    # another customer is not affected
    other = await store.create_customer(lic)
    await store.start_chat(lic, other.id, [0], {}, {}, [], LIMIT)


async def test_reopening_counts_toward_the_limit(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    first = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    await store.close_thread(lic, first.chat.id, None, anyone)
    for _ in range(LIMIT):
        await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    await raises(ErrorType.LIMIT_REACHED, store.append_event(lic, first.chat.id, message(cid, "again"), anyone, LIMIT))
    chat = await store.get_chat(lic, first.chat.id)
    assert chat is not None and chat.active_thread_id is None and chat.threads_count == 1


async def test_append_event(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "a")], LIMIT)
    chat_id = started.chat.id
    second = await store.append_event(lic, chat_id, message(cid, "b"), anyone, LIMIT)
    assert not second.opened_thread and not second.duplicate
    assert second.thread.id == started.thread.id and second.event.id == f"{started.thread.id}_2"
    assert second.event.order > started.events[0].order
    assert second.thread.events_count == 2 and second.chat.id == chat_id


async def test_append_after_close_opens_a_new_thread(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "a")], LIMIT)
    closed = await store.close_thread(lic, started.chat.id, None, anyone)
    assert not closed.active and closed.closed_at is not None and closed.closed_at > started.events[0].order
    reopened = await store.append_event(lic, started.chat.id, message(cid, "b"), anyone, LIMIT)
    assert reopened.opened_thread and not reopened.duplicate
    assert reopened.thread.id != started.thread.id and reopened.thread.order > closed.closed_at
    assert reopened.event.id == f"{reopened.thread.id}_1"
    assert reopened.chat.threads_count == 2 and reopened.chat.active_thread_id == reopened.thread.id
    assert reopened.chat.order == reopened.thread.order
    threads, total = await store.list_threads(lic, started.chat.id, 0, 10, newest_first=True)
    assert total == 2 and [t.id for t in threads] == [reopened.thread.id, started.thread.id]
    assert [t.active for t in threads] == [True, False]
    oldest, _ = await store.list_threads(lic, started.chat.id, 0, 1, newest_first=False)
    assert [t.id for t in oldest] == [started.thread.id]
    both = await store.get_threads(lic, started.chat.id, [reopened.thread.id, started.thread.id])
    assert [t.id for t in both] == [started.thread.id, reopened.thread.id]


async def test_custom_id_duplicate_answers_the_original(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    original = await store.append_event(lic, started.chat.id, message(cid, "hello", "c-1"), anyone, LIMIT)
    again = await store.append_event(lic, started.chat.id, message(cid, "edited", "c-1"), anyone, LIMIT)
    assert again.duplicate and not again.opened_thread
    assert again.event == original.event and again.event.body == {"text": "hello"}
    # also after the thread closed: no new thread is opened for a retry
    await store.close_thread(lic, started.chat.id, None, anyone)
    late = await store.append_event(lic, started.chat.id, message(cid, "x", "c-1"), anyone, LIMIT)
    assert late.duplicate and late.event.id == original.event.id and not late.opened_thread
    events = await store.thread_events(lic, [started.thread.id])
    assert len(events[started.thread.id]) == 1
    # per author and per chat
    other = await store.append_event(lic, started.chat.id, message("agent-1", "x", "c-1"), anyone, LIMIT)
    assert not other.duplicate


async def test_concurrent_custom_id_duplicates_store_once(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    results = await asyncio.gather(
        *(store.append_event(lic, started.chat.id, message(cid, "same", "dup"), anyone, LIMIT) for _ in range(20))
    )
    assert len({r.event.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1


async def test_append_to_unknown_or_denied_chat(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    await raises(
        ErrorType.NOT_FOUND, store.append_event(lic, "NOSUCHCHAT", message(cid, "x"), anyone, LIMIT), "chat not found"
    )
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    other = await store.create_license("Other")
    await raises(ErrorType.NOT_FOUND, store.append_event(other.id, started.chat.id, message(cid, "x"), anyone, LIMIT))
    # a check that raises changes nothing, not even the thread it would have opened
    await store.close_thread(lic, started.chat.id, None, anyone)
    await raises(ErrorType.NOT_FOUND, store.append_event(lic, started.chat.id, message(cid, "x"), denied, LIMIT))
    chat = await store.get_chat(lic, started.chat.id)
    assert chat is not None and chat.active_thread_id is None and chat.threads_count == 1


async def test_failed_start_chat_leaves_nothing_behind(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    events = [message(cid, "a", "same"), message(cid, "b", "same")]
    await raises(ErrorType.VALIDATION, store.start_chat(lic, cid, [0], {}, {}, events, LIMIT))
    assert await store.list_customer_chats(lic, cid, 0, 10) == ([], 0)
    assert await store.queued_threads(lic) == []


async def test_close_thread(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    chat_id, thread_id = started.chat.id, started.thread.id
    await raises(ErrorType.NOT_FOUND, store.close_thread(lic, chat_id, "NOSUCHTHRD", anyone), "thread not found")
    await raises(ErrorType.NOT_FOUND, store.close_thread(lic, chat_id, None, denied))
    closed = await store.close_thread(lic, chat_id, thread_id, anyone)
    assert closed.id == thread_id and not closed.active and closed.closed_at
    await raises(
        ErrorType.CHAT_INACTIVE, store.close_thread(lic, chat_id, None, anyone), "the chat has no active thread"
    )
    reopened = await store.append_event(lic, chat_id, message(cid, "again"), anyone, LIMIT)
    await raises(
        ErrorType.CHAT_INACTIVE,
        store.close_thread(lic, chat_id, thread_id, anyone),
        f"thread {thread_id} is not active",
    )
    await raises(ErrorType.NOT_FOUND, store.close_thread(lic, "NOSUCHCHAT", None, anyone))
    [stored] = await store.get_threads(lic, chat_id, [thread_id])
    assert not stored.active and stored.closed_at == closed.closed_at and not stored.queued
    assert (await store.get_chat(lic, chat_id)).active_thread_id == reopened.thread.id  # type: ignore[union-attr]


async def test_scopes(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    g1 = await store.create_group(lic, "Sales")
    g2 = await store.create_group(lic, "Support")
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    chat_id = started.chat.id
    change = await store.update_chat_scopes(lic, chat_id, [g2, g1, 0], [], anyone)
    assert change.chat.scopes == [0, g1, g2] and change.added == [g1, g2] and change.removed == []
    change = await store.update_chat_scopes(lic, chat_id, [], [0, g1, 99], anyone)
    assert change.chat.scopes == [g2] and change.added == [] and change.removed == [0, g1]
    await raises(
        ErrorType.GROUP_NOT_FOUND, store.update_chat_scopes(lic, chat_id, [42], [], anyone), "group 42 does not exist"
    )
    await raises(
        ErrorType.VALIDATION,
        store.update_chat_scopes(lic, chat_id, [], [g2], anyone),
        "`remove_scopes` would leave the chat without any group",
    )
    await raises(ErrorType.NOT_FOUND, store.update_chat_scopes(lic, chat_id, [0], [], denied))
    assert (await store.get_chat(lic, chat_id)).scopes == [g2]  # type: ignore[union-attr]


async def test_properties(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {"ns": {"a": 1, "b": "x"}}, {"t": {"k": True}}, [], LIMIT)
    chat_id, thread_id = started.chat.id, started.thread.id
    chat, changed = await store.update_chat_properties(
        lic, chat_id, {"ns": {"a": 1, "b": None, "c": [1, 2]}, "new": {"z": "y"}, "gone": {"q": None}}, anyone
    )
    assert changed == {"ns": {"b": None, "c": [1, 2]}, "new": {"z": "y"}}
    assert chat.properties == {"ns": {"a": 1, "c": [1, 2]}, "new": {"z": "y"}}
    assert (await store.get_chat(lic, chat_id)).properties == chat.properties  # type: ignore[union-attr]
    _, changed = await store.update_chat_properties(lic, chat_id, {"ns": {"a": 1}}, anyone)
    assert changed == {}
    _, changed = await store.update_chat_properties(lic, chat_id, {"new": {"z": None}}, anyone)
    assert changed == {"new": {"z": None}}
    assert (await store.get_chat(lic, chat_id)).properties == {"ns": {"a": 1, "c": [1, 2]}}  # type: ignore[union-attr]
    await raises(ErrorType.NOT_FOUND, store.update_chat_properties(lic, chat_id, {"ns": {"a": 2}}, denied))

    chat, changed = await store.update_thread_properties(lic, chat_id, thread_id, {"t": {"k": None, "n": 1}}, anyone)
    assert changed == {"t": {"k": None, "n": 1}} and chat.id == chat_id
    [thread] = await store.get_threads(lic, chat_id, [thread_id])
    assert thread.properties == {"t": {"n": 1}}
    await raises(
        ErrorType.NOT_FOUND, store.update_thread_properties(lic, chat_id, "NOSUCHTHRD", {"t": {"n": 2}}, anyone)
    )
    await raises(ErrorType.NOT_FOUND, store.update_thread_properties(lic, chat_id, thread_id, {"t": {"n": 2}}, denied))


async def test_customer_chat_lists(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    chats = [(await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)).chat for _ in range(4)]
    await store.close_thread(lic, chats[1].id, None, anyone)
    page, total = await store.list_customer_chats(lic, cid, 0, 3)
    assert total == 4 and [c.id for c in page] == [c.id for c in reversed(chats)][:3]
    page, total = await store.list_customer_chats(lic, cid, 3, 3)
    assert total == 4 and [c.id for c in page] == [chats[0].id]
    assert [c.id for c in await store.active_chats(lic, cid)] == [chats[3].id, chats[2].id, chats[0].id]
    # a reopened chat becomes the newest
    await store.append_event(lic, chats[1].id, message(cid, "back"), anyone, LIMIT)
    page, _ = await store.list_customer_chats(lic, cid, 0, 1)
    assert page[0].id == chats[1].id


async def test_order_is_increasing_across_chats(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    other = await store.create_customer(lic)
    a = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    b = await store.start_chat(lic, other.id, [0], {}, {}, [], LIMIT)
    orders = [a.thread.order, b.thread.order]
    for i in range(10):
        chat = a if i % 2 else b
        orders.append((await store.append_event(lic, chat.chat.id, message(cid, str(i)), anyone, LIMIT)).event.order)
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    # microseconds of the wall clock: created_at is the same instant
    assert abs(orders[-1] - ids.now_us()) < 60_000_000


# -- agents in chats, routing, archives --------------------------------------------------


async def test_members_queue_and_loads(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    first = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    second = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    queue = await store.queued_threads(lic)
    assert [(c.id, t.id) for c, t in queue] == [(first.chat.id, first.thread.id), (second.chat.id, second.thread.id)]
    assert all(t.queued and t.active for _, t in queue)
    assert await store.agent_loads(lic) == {}

    change = await store.change_members(
        lic, first.chat.id, ["agent-a", "agent-b", "agent-a"], anyone, system=("routing.assigned", "Ann joined")
    )
    assert change.chat.agent_ids == ["agent-a", "agent-b"] and change.added == ["agent-a", "agent-b"]
    assert change.removed == [] and change.thread is not None
    assert change.thread.agent_id == "agent-a" and not change.thread.queued
    assert change.thread.user_ids == [cid, "agent-a", "agent-b"]
    assert change.event is not None and change.event.type == "system_message" and change.event.author_id is None
    assert change.event.body == {"text": "Ann joined", "system_message_type": "routing.assigned"}
    assert change.event.id == f"{first.thread.id}_1"
    assert [c.id for c, _ in await store.queued_threads(lic)] == [second.chat.id]
    assert await store.agent_loads(lic) == {"agent-a": 1, "agent-b": 1}

    await store.change_members(lic, second.chat.id, ["agent-a"], anyone, scopes=[0, 1])
    assert await store.agent_loads(lic) == {"agent-a": 2, "agent-b": 1}
    assert (await store.get_chat(lic, second.chat.id)).scopes == [0, 1]  # type: ignore[union-attr]

    # nobody left: back in the queue, behind what queued before
    third = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    change = await store.change_members(lic, first.chat.id, [], anyone)
    assert change.removed == ["agent-a", "agent-b"] and change.thread is not None and change.thread.queued
    assert change.event is None
    assert [c.id for c, _ in await store.queued_threads(lic)] == [third.chat.id, first.chat.id]
    assert await store.agent_loads(lic) == {"agent-a": 1}

    # a stale thread id: the chat moved on
    await store.close_thread(lic, second.chat.id, None, anyone)
    assert await store.agent_loads(lic) == {}
    await raises(
        ErrorType.CHAT_INACTIVE,
        store.change_members(lic, second.chat.id, ["agent-b"], anyone, thread_id=second.thread.id),
        "the thread is no longer active",
    )
    await raises(ErrorType.NOT_FOUND, store.change_members(lic, "NOSUCHCHAT", [], anyone))
    # a closed chat: members change, no thread, no event
    closed = await store.change_members(lic, second.chat.id, [], anyone, system=("x", "y"))
    assert closed.thread is None and closed.event is None and closed.removed == ["agent-a"]


async def test_list_agent_chats(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    g1 = await store.create_group(lic, "Sales")
    in_0 = (await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)).chat
    in_1 = (await store.start_chat(lic, cid, [g1], {}, {}, [], LIMIT)).chat
    both = (await store.start_chat(lic, cid, [0, g1], {}, {}, [], LIMIT)).chat
    await store.change_members(lic, in_1.id, ["agent-a"], anyone)
    await store.close_thread(lic, both.id, None, anyone)

    async def ids_of(groups: list[int], status: str | None = None, member: str | None = None) -> list[str]:
        chats, total = await store.list_agent_chats(lic, groups, status, member, 0, 10)
        assert total == len(chats)
        return [c.id for c in chats]

    assert await ids_of([0]) == [both.id, in_0.id]
    assert await ids_of([g1]) == [both.id, in_1.id]
    assert await ids_of([0, g1]) == [both.id, in_1.id, in_0.id]
    assert await ids_of([]) == []
    assert await ids_of([0, g1], "active") == [in_1.id, in_0.id]
    assert await ids_of([0, g1], "queued") == [in_0.id]
    assert await ids_of([0, g1], "closed") == [both.id]
    assert await ids_of([0, g1], None, "agent-a") == [in_1.id]
    assert await ids_of([0], None, "agent-a") == []
    page, total = await store.list_agent_chats(lic, [0, g1], None, None, 1, 1)
    assert total == 3 and [c.id for c in page] == [in_1.id]
    other = await store.create_license("Other")
    assert await store.list_agent_chats(other.id, [0, g1], None, None, 0, 10) == ([], 0)


async def test_search_archives(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    g1 = await store.create_group(lic, "Sales")
    before = ids.now_us()
    refund = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "I want a refund for my Order")], LIMIT)
    await store.append_event(lic, refund.chat.id, message("agent-a", "Sure, refunding order 1234"), anyone, LIMIT)
    shipping = await store.start_chat(lic, cid, [g1], {}, {}, [message(cid, "where is my shipment?")], LIMIT)
    files = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    await store.append_event(
        lic, files.chat.id, NewEvent("file", cid, {"name": "invoice.pdf", "url": "u"}), anyone, LIMIT
    )
    still_open = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "refund please")], LIMIT)
    for chat in (refund, shipping, files):
        await store.close_thread(lic, chat.chat.id, None, anyone)

    async def found(groups: list[int], query: str | None, since: int = 0, until: int = FOREVER) -> list[str]:
        hits, total = await store.search_archives(lic, groups, query, since, until, 0, 10)
        assert total == len(hits)
        assert all(not t.active and t.chat_id == c.id for c, t in hits)
        return [c.id for c, _ in hits]

    assert await found([0, g1], None) == [files.chat.id, shipping.chat.id, refund.chat.id]
    assert await found([0], None) == [files.chat.id, refund.chat.id]
    assert await found([0, g1], "refund") == [refund.chat.id]
    assert await found([0, g1], "REFUN") == [refund.chat.id]  # prefix, any case
    assert await found([0, g1], "refund order") == [refund.chat.id]  # every word, in one event
    assert await found([0, g1], "refund shipment") == []
    assert await found([0, g1], "ship") == [shipping.chat.id]
    assert await found([0], "ship") == []
    assert await found([0, g1], "invoice") == [files.chat.id]
    assert await found([0, g1], "1234") == [refund.chat.id]
    assert await found([0, g1], 'refund" OR "x') == []  # operators in user text are words
    assert await found([0, g1], "it's & | ! ( ) : *") == []
    assert await found([0, g1], "!!!") == []
    assert still_open.chat.id not in await found([0, g1], "refund")
    assert await found([0, g1], None, since=before, until=refund.thread.order + 1) == [refund.chat.id]
    assert await found([0, g1], None, since=ids.now_us()) == []
    page, total = await store.search_archives(lic, [0, g1], None, 0, FOREVER, 1, 1)
    assert total == 3 and [c.id for c, _ in page] == [shipping.chat.id]
    other = await store.create_license("Other")
    assert await store.search_archives(other.id, [0, g1], "refund", 0, FOREVER, 0, 10) == ([], 0)


# -- files and export --------------------------------------------------------------------


async def test_files(store: Store) -> None:
    lic, _ = await licence_and_customer(store)
    data = bytes(range(256)) * 10
    token = ids.file_token()
    await store.put_file(StoredFile(token, lic, "a.bin", "application/octet-stream", len(data), data))
    assert await store.get_file(token) == StoredFile(token, lic, "a.bin", "application/octet-stream", len(data), data)
    assert await store.get_file("missing") is None


async def test_export_chats(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    old = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "old")], LIMIT)
    await store.close_thread(lic, old.chat.id, None, anyone)
    await store.append_event(lic, old.chat.id, message(cid, "second thread"), anyone, LIMIT)
    middle = ids.now_us()
    await asyncio.sleep(0.002)
    new = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "new")], LIMIT)

    exported = [item async for item in store.export_chats(lic, 0)]
    assert [chat.id for chat, _, _ in exported] == [old.chat.id, new.chat.id]
    chat, threads, events = exported[0]
    assert chat.threads_count == 2 and len(threads) == 2 and threads[0].id == old.thread.id
    assert [[e.body["text"] for e in events[t.id]] for t in threads] == [["old"], ["second thread"]]
    assert [chat.id for chat, _, _ in [item async for item in store.export_chats(lic, middle)]] == [new.chat.id]
    other = await store.create_license("Other")
    assert [item async for item in store.export_chats(other.id, 0)] == []


# -- group commit ------------------------------------------------------------------------


async def test_group_commit_failures_change_nothing(store: Store) -> None:
    """50 writes at once: the good ones commit, each bad one changes nothing and harms nobody."""
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    chat_id = started.chat.id
    calls: list[Any] = []
    expect: list[str] = []
    for i in range(50):
        if i % 5 == 1:
            calls.append(store.append_event(lic, "MISSING", message(cid, f"bad {i}"), anyone, LIMIT))
            expect.append("not_found")
        elif i % 5 == 2:
            calls.append(store.append_event(lic, chat_id, message(cid, f"denied {i}"), denied, LIMIT))
            expect.append("not_found")
        elif i % 5 == 3:
            # fails after it wrote a chat and a thread: the savepoint must undo them
            dup = [message(cid, "a", f"x{i}"), message(cid, "b", f"x{i}")]
            calls.append(store.start_chat(lic, cid, [0], {}, {}, dup, LIMIT))
            expect.append("validation")
        else:
            calls.append(store.append_event(lic, chat_id, message(cid, f"good {i}"), anyone, LIMIT))
            expect.append("ok")
    sizes: list[int] = []
    if isinstance(store, PostgresStore):
        # check that this really is one batch (one transaction with savepoints), not 50 commits
        run_batch = store._run_batch

        async def counting(batch: list[Any]) -> None:
            sizes.append(len(batch))
            await run_batch(batch)

        store._run_batch = counting  # type: ignore[method-assign]
    results = await asyncio.gather(*calls, return_exceptions=True)
    if isinstance(store, PostgresStore):
        assert max(sizes) > 25, sizes  # capped at 64 (see _BATCH_MAX), so 50 fit in one
    for result, want in zip(results, expect, strict=True):
        if want == "ok":
            assert not isinstance(result, BaseException), result
        else:
            assert isinstance(result, ApiError) and result.kind.type_name == want, result
    good = [r for r in results if not isinstance(r, BaseException)]
    assert len(good) == 20
    events = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert sorted(e.body["text"] for e in events) == sorted(f"good {i}" for i in range(50) if expect[i] == "ok")
    assert [e.id for e in events] == [f"{started.thread.id}_{n}" for n in range(1, 21)]
    orders = [e.order for e in events]
    assert orders == sorted(orders) and len(set(orders)) == 20
    assert await store.list_customer_chats(lic, cid, 0, 50) == ([await store.get_chat(lic, chat_id)], 1)
    [thread] = await store.get_threads(lic, chat_id, [started.thread.id])
    assert thread.events_count == 20


async def test_failed_write_does_not_poison_the_next_one(store: Store) -> None:
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    await raises(ErrorType.NOT_FOUND, store.append_event(lic, "MISSING", message(cid, "x"), anyone, LIMIT))
    ok = await store.append_event(lic, started.chat.id, message(cid, "fine"), anyone, LIMIT)
    assert ok.event.id == f"{started.thread.id}_1"


# -- PostgreSQL only ---------------------------------------------------------------------


def test_postgres_migrations_split_cleanly() -> None:
    """The runner splits files on semicolons: one inside a comment would cut a statement."""
    from parley.store import migrations

    found = migrations.pending("postgres", set())
    assert [v for v, _, _ in found] == list(range(1, len(found) + 1))
    for _, name, statements in found:
        for statement in statements:
            code = [line for line in statement.splitlines() if not line.strip().startswith("--")]
            assert "".join(code).strip(), f"{name}: a statement made only of comments: {statement!r}"


def test_factory_picks_postgres(tmp_path: Path) -> None:
    from parley.store.factory import open_store

    for url in ("postgres://127.0.0.1/x", "postgresql://u@127.0.0.1:5432/x"):
        assert isinstance(open_store(tmp_path, url), PostgresStore)
    assert isinstance(open_store(tmp_path, None), SqliteStore)


async def test_two_nodes_on_one_database(pg_url: str) -> None:
    """Two stores (two nodes' worth of writers) appending to the same chats at once: every
    order is unique and increasing in commit order, event ids never collide, nothing deadlocks."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await asyncio.gather(a.open(), b.open())
    try:
        lic, cid = await licence_and_customer(a)
        chats = [(await a.start_chat(lic, cid, [0], {}, {}, [], LIMIT)).chat.id for _ in range(3)]
        calls = [
            (a if i % 2 else b).append_event(lic, chats[i % 3], message(cid, f"m{i}"), anyone, LIMIT)
            for i in range(120)
        ]
        results = await asyncio.gather(*calls)
        orders = [r.event.order for r in results]
        assert len(set(orders)) == len(orders)
        for chat_id in chats:
            chat = await b.get_chat(lic, chat_id)
            assert chat is not None and chat.active_thread_id is not None
            events = (await a.thread_events(lic, [chat.active_thread_id]))[chat.active_thread_id]
            assert len(events) == 40
            assert [e.id for e in events] == [f"{chat.active_thread_id}_{n}" for n in range(1, 41)]
            assert [e.order for e in events] == sorted(e.order for e in events)
        # the same meta value, whoever asks first
        key = f"k-{secrets.token_hex(4)}"
        values = await asyncio.gather(*(s.meta(key, lambda s=s: str(id(s))) for s in (a, b, a, b)))
        assert len(set(values)) == 1
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_orders_follow_commits_across_nodes(pg_url: str) -> None:
    """A stamp handed out by one node is always above every stamp already committed by another,
    even when the other node's clock runs ahead (the clock row, not the wall clock, decides)."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await asyncio.gather(a.open(), b.open())
    try:
        lic, cid = await licence_and_customer(a)
        started = await a.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
        last = started.thread.order
        for i in range(20):
            node = (a, b)[i % 2]
            got = await node.append_event(lic, started.chat.id, message(cid, str(i)), anyone, LIMIT)
            assert got.event.order > last
            last = got.event.order
        async with a.pool.acquire() as conn:
            future = ids.now_us() + 3_600_000_000
            await conn.execute("UPDATE parley_clock SET last = $1", future)
        got = await b.append_event(lic, started.chat.id, message(cid, "after a clock jump"), anyone, LIMIT)
        assert got.event.order == future + 1
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_migrations_race_on_a_fresh_database(fresh_pg_url: str) -> None:
    stores = [PostgresStore(fresh_pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        lic = await stores[0].create_license("Acme")
        assert (await stores[3].get_license(lic.id)) is not None
        async with stores[1].pool.acquire() as conn:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == sorted(set(versions)) and versions[0] == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    # and again: nothing left to apply
    again = PostgresStore(fresh_pg_url)
    await again.open()
    await again.close()


async def test_reconnects_after_the_database_dropped_its_connections(pg: PostgresStore, pg_url: str) -> None:
    """A database restart or failover drops every connection: ping and the next write must
    reconnect on their own rather than fail once."""
    lic, cid = await licence_and_customer(pg)
    started = await pg.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    killer = await asyncpg.connect(pg_url)
    try:
        killed = await killer.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'parley'"
        )
    finally:
        await killer.close()
    assert killed >= 2  # the writer and at least one pooled reader
    await asyncio.sleep(0.1)
    await pg.ping()
    got = await pg.append_event(lic, started.chat.id, message(cid, "after the drop"), anyone, LIMIT)
    assert got.event.id == f"{started.thread.id}_1"


async def test_nul_characters_are_a_validation_error(pg: PostgresStore) -> None:
    lic, cid = await licence_and_customer(pg)
    started = await pg.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    await raises(ErrorType.VALIDATION, pg.append_event(lic, started.chat.id, message(cid, "a\x00b"), anyone, LIMIT))
    await raises(ErrorType.VALIDATION, pg.update_customer(lic, cid, {"name": "a\x00b"}))
    ok = await pg.append_event(lic, started.chat.id, message(cid, "fine"), anyone, LIMIT)
    assert ok.event.id == f"{started.thread.id}_1"


async def test_unreachable_database_is_named() -> None:
    store = PostgresStore("postgresql://parley:secret@127.0.0.1:1/nowhere", connect_wait=0.5)
    with pytest.raises(DatabaseUnavailable) as info:
        await store.open()
    text = str(info.value)
    assert "postgresql://parley@127.0.0.1:1/nowhere" in text and "secret" not in text
    assert isinstance(info.value, OSError)  # so `parley admin` prints it as its one-line error


async def test_missing_database_fails_at_once(pg_url: str) -> None:
    url = with_database(pg_url, f"parley_missing_{secrets.token_hex(4)}")
    store = PostgresStore(url, connect_wait=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DatabaseUnavailable, match="parley_missing_"):
        await store.open()
    assert loop.time() - started < 5


async def test_closed_store_refuses_writes(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.create_license("late")


async def test_licence_settings_merge(store: Store) -> None:
    lic = await store.create_license("Settings")
    first = await store.update_license_settings(lic.id, {"prechat_form": True})
    assert first.settings == {"prechat_form": True}
    second = await store.update_license_settings(lic.id, {"max_chats_per_agent": 3})
    assert second.settings == {"prechat_form": True, "max_chats_per_agent": 3}
    found = await store.get_license(lic.id)
    assert found is not None and found.settings == second.settings
    with pytest.raises(ApiError) as caught:
        await store.update_license_settings(10**9, {"prechat_form": True})
    assert caught.value.kind is ErrorType.LICENSE_NOT_FOUND


# -- append_event: counters, refusals and duplicates inside a batch ------------------------------


def note(author: str, text: str) -> NewEvent:
    return NewEvent(type="message", author_id=author, body={"text": text}, recipients="agents")


def inactive_only(chat: Chat) -> None:
    """A check that looks at the chat before it refuses (as the agents' `_and_active` does)."""
    if chat.active_thread_id is not None:
        raise ApiError(ErrorType.CHAT_INACTIVE, "refused")


async def test_append_counts_events_and_notes_across_a_batch(store: Store) -> None:
    """Failures first, last and in between in one batch: event ids stay dense, and the thread's
    events_count and notes_count (agents-only events) count exactly the events that were stored."""
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "first")], LIMIT)
    chat_id = started.chat.id
    calls: list[Any] = []
    kinds: list[str] = []
    for i in range(30):
        if i % 6 == 0:
            calls.append(store.append_event(lic, chat_id, note("agent-1", f"denied {i}"), denied, LIMIT))
            kinds.append("denied")
        elif i % 6 == 3:
            calls.append(store.append_event(lic, chat_id, message(cid, f"refused {i}"), inactive_only, LIMIT))
            kinds.append("refused")
        elif i % 3 == 1:
            calls.append(store.append_event(lic, chat_id, note("agent-1", f"note {i}"), anyone, LIMIT))
            kinds.append("note")
        else:
            calls.append(store.append_event(lic, chat_id, message(cid, f"public {i}"), anyone, LIMIT))
            kinds.append("public")
    calls.append(store.append_event(lic, "MISSING", message(cid, "last"), anyone, LIMIT))
    kinds.append("denied")
    results = await asyncio.gather(*calls, return_exceptions=True)
    stored = []
    for result, kind in zip(results, kinds, strict=True):
        if kind in ("denied", "refused"):
            want = ErrorType.NOT_FOUND if kind == "denied" else ErrorType.CHAT_INACTIVE
            assert isinstance(result, ApiError) and result.kind is want, result
        else:
            assert not isinstance(result, BaseException), result
            assert result.thread.id == started.thread.id and not result.opened_thread and not result.duplicate
            # the answer's thread counts up to and including its own event
            assert result.event.id == f"{started.thread.id}_{result.thread.events_count}"
            stored.append((result, kind))
    notes = sum(kind == "note" for _, kind in stored)
    assert len(stored) == 20 and notes == 10
    ids_seen = sorted(int(r.event.id.rsplit("_", 1)[1]) for r, _ in stored)
    assert ids_seen == list(range(2, 22))
    for result, kind in stored:
        assert result.event.recipients == ("agents" if kind == "note" else "all")
    [thread] = await store.get_threads(lic, chat_id, [started.thread.id])
    assert (thread.events_count, thread.notes_count) == (21, notes)
    assert thread.visible_count("customer") == 21 - notes and thread.visible_count("agent") == 21
    events = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert [e.id for e in events] == [f"{started.thread.id}_{n}" for n in range(1, 22)]
    assert sum(e.recipients == "agents" for e in events) == notes
    assert not any(e.body["text"].startswith(("denied", "refused")) for e in events)
    # the next one goes on from there
    more = await store.append_event(lic, chat_id, note("agent-1", "after"), anyone, LIMIT)
    assert more.event.id == f"{started.thread.id}_22" and more.thread.notes_count == notes + 1


async def test_refused_append_changes_nothing(store: Store) -> None:
    """A check that refuses a chat with an active thread: no event, no counter moved, and the
    chat is not even 'recently active' for an export; alone or among other writes."""
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [message(cid, "a")], LIMIT)
    other = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    # from the store's clock, not the wall clock: another test may have moved it ahead
    mark = other.thread.order + 1
    await raises(ErrorType.NOT_FOUND, store.append_event(lic, started.chat.id, note("agent-1", "x"), denied, LIMIT))
    await raises(
        ErrorType.CHAT_INACTIVE, store.append_event(lic, started.chat.id, message(cid, "y"), inactive_only, LIMIT)
    )
    await raises(ErrorType.NOT_FOUND, store.append_event(lic, started.chat.id, message(cid, "z", "c-9"), denied, LIMIT))
    results = await asyncio.gather(
        store.append_event(lic, started.chat.id, note("agent-1", "x"), denied, LIMIT),
        store.append_event(lic, other.chat.id, message(cid, "elsewhere"), anyone, LIMIT),
        store.append_event(lic, started.chat.id, message(cid, "y", "c-9"), inactive_only, LIMIT),
        return_exceptions=True,
    )
    assert isinstance(results[0], ApiError) and isinstance(results[2], ApiError)
    assert not isinstance(results[1], BaseException) and results[1].event.id == f"{other.thread.id}_1"
    [thread] = await store.get_threads(lic, started.chat.id, [started.thread.id])
    assert (thread.events_count, thread.notes_count) == (1, 0)
    events = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert [e.body["text"] for e in events] == ["a"]
    assert [chat.id for chat, _, _ in [item async for item in store.export_chats(lic, mark)]] == [other.chat.id]
    # the refused custom_id was not stored either: using it now is a fresh event
    fresh = await store.append_event(lic, started.chat.id, message(cid, "now", "c-9"), anyone, LIMIT)
    assert not fresh.duplicate and fresh.event.id == f"{started.thread.id}_2"


async def test_duplicate_answers_with_its_own_thread(store: Store) -> None:
    """A retried custom_id whose original sits in an older, closed thread answers that event and
    that thread, and changes nothing in the active one; a refusing check wins over the duplicate."""
    lic, cid = await licence_and_customer(store)
    started = await store.start_chat(lic, cid, [0], {}, {}, [], LIMIT)
    original = await store.append_event(lic, started.chat.id, message(cid, "hello", "c-1"), anyone, LIMIT)
    await store.close_thread(lic, started.chat.id, None, anyone)
    reopened = await store.append_event(lic, started.chat.id, message(cid, "again"), anyone, LIMIT)
    assert reopened.opened_thread
    again = await store.append_event(lic, started.chat.id, message(cid, "retry", "c-1"), anyone, LIMIT)
    assert again.duplicate and not again.opened_thread and again.event == original.event
    assert again.thread.id == started.thread.id and not again.thread.active and again.thread.events_count == 1
    assert again.chat.active_thread_id == reopened.thread.id
    await raises(
        ErrorType.NOT_FOUND, store.append_event(lic, started.chat.id, message(cid, "retry", "c-1"), denied, LIMIT)
    )
    [active] = await store.get_threads(lic, started.chat.id, [reopened.thread.id])
    assert active.events_count == 1
    # a note's retry is a duplicate too, and counts once
    first = await store.append_event(
        lic, started.chat.id, NewEvent("message", "agent-1", {"text": "n"}, "agents", "n-1"), anyone, LIMIT
    )
    retry = await store.append_event(
        lic, started.chat.id, NewEvent("message", "agent-1", {"text": "n"}, "agents", "n-1"), anyone, LIMIT
    )
    assert retry.duplicate and retry.event == first.event and retry.thread.notes_count == 1
    [active] = await store.get_threads(lic, started.chat.id, [reopened.thread.id])
    assert (active.events_count, active.notes_count) == (2, 1)


async def test_postgres_append_costs_one_round_trip(pg: PostgresStore) -> None:
    """The hot path's price on the writer connection: one round trip per append, plus BEGIN (with
    the clock's lock) and COMMIT per batch; a refused one costs a replay of its batch, not a
    savepoint each."""
    lic, cid = await licence_and_customer(pg)
    chats = [(await pg.start_chat(lic, cid, [0], {}, {}, [], LIMIT)).chat.id for _ in range(3)]
    calls: list[str] = []
    writer = pg._writer

    class Counting:
        def __getattr__(self, name: str) -> Any:
            attr = getattr(writer, name)
            if name not in ("execute", "fetch", "fetchrow", "fetchval"):
                return attr

            async def counted(query: str, *args: Any) -> Any:
                calls.append(query)
                return await attr(query, *args)

            return counted

    pg._writer = Counting()  # type: ignore[assignment]
    try:
        sends = [
            pg.append_event(lic, chats[i % 3], message(cid, f"m{i}", f"c{i}" if i % 2 else None), anyone, LIMIT)
            for i in range(12)
        ]
        results = await asyncio.gather(*sends)
        assert not any(r.duplicate or r.opened_thread for r in results)
        assert len(calls) == 12 + 2, calls
        assert not any("SAVEPOINT" in q for q in calls)
        calls.clear()
        # a refusal in the middle: rolled back, then the batch again with a savepoint around it alone
        sends = [
            pg.append_event(lic, chats[0], message(cid, "a"), anyone, LIMIT),
            pg.append_event(lic, chats[0], message(cid, "refused"), denied, LIMIT),
            pg.append_event(lic, chats[0], message(cid, "b"), anyone, LIMIT),
        ]
        results = await asyncio.gather(*sends, return_exceptions=True)
        assert isinstance(results[1], ApiError) and not isinstance(results[0], BaseException)
        assert not isinstance(results[2], BaseException) and results[2].event.id.endswith("_6")
        assert sum("SAVEPOINT" in q for q in calls) == 2  # SAVEPOINT, then ROLLBACK TO + RELEASE
    finally:
        pg._writer = writer
