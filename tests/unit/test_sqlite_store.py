"""SqliteStore on its own (no server): chats, events, idempotent custom_id, the active-chat limit,
and group commit where a failing operation in a batch changes nothing and harms no neighbour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

from parley.protocol.errors import ApiError, ErrorType
from parley.store.records import Appended, Chat, NewEvent
from parley.store.sqlite import SqliteStore

LIMIT = 10


def anyone(chat: Chat) -> None:
    """An access check that lets everything through."""


def message(author: str, text: str, custom_id: str | None = None) -> NewEvent:
    return NewEvent(type="message", author_id=author, body={"text": text}, custom_id=custom_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "nested" / "dir" / "parley.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def new_customer(store: SqliteStore) -> tuple[int, str]:
    lic = await store.create_license("Acme")
    customer = await store.create_customer(lic.id)
    return lic.id, customer.id


async def test_open_creates_the_database(tmp_path: Path, store: SqliteStore) -> None:
    assert (tmp_path / "nested" / "dir" / "parley.db").exists()
    await store.ping()


async def test_license_has_group_zero(store: SqliteStore) -> None:
    lic = await store.create_license("Acme")
    assert lic.id > 0
    assert await store.group_ids(lic.id) == {0}
    assert (await store.get_license(lic.id)) is not None
    assert (await store.get_license_by_org(lic.organization_id)) is not None
    assert await store.get_license(lic.id + 1000) is None


async def test_meta_keeps_the_first_value(store: SqliteStore) -> None:
    first = await store.meta("jwt_signing_key", lambda: "one")
    second = await store.meta("jwt_signing_key", lambda: "two")
    assert first == second == "one"


async def test_start_chat_with_events(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(
        lic, cust, [0], {"ns": {"a": 1}}, {"t": {"b": 2}}, [message(cust, "one"), message(cust, "two")], LIMIT
    )
    assert started.chat.customer_id == cust
    assert started.chat.scopes == [0]
    assert started.chat.active_thread_id == started.thread.id
    assert started.thread.active is True
    assert started.thread.properties == {"t": {"b": 2}}
    assert [e.body["text"] for e in started.events] == ["one", "two"]
    assert started.events[0].order < started.events[1].order
    assert len({e.id for e in started.events}) == 2
    assert all(e.thread_id == started.thread.id for e in started.events)
    stored = await store.thread_events(lic, [started.thread.id])
    assert [e.id for e in stored[started.thread.id]] == [e.id for e in started.events]
    chat = await store.get_chat(lic, started.chat.id)
    assert chat is not None and chat.properties == {"ns": {"a": 1}}


async def test_append_event_goes_to_the_active_thread(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    first = await store.append_event(lic, started.chat.id, message(cust, "a"), anyone, LIMIT)
    second = await store.append_event(lic, started.chat.id, message(cust, "b"), anyone, LIMIT)
    assert first.thread.id == second.thread.id == started.thread.id
    assert not first.opened_thread and not first.duplicate
    assert first.event.order < second.event.order
    assert first.event.id != second.event.id
    stored = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert [e.body["text"] for e in stored] == ["a", "b"]


async def test_append_after_close_opens_a_newer_thread(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(lic, cust, [0], {}, {}, [message(cust, "a")], LIMIT)
    closed = await store.close_thread(lic, started.chat.id, None, anyone)
    assert closed.active is False
    with pytest.raises(ApiError) as caught:
        await store.close_thread(lic, started.chat.id, None, anyone)
    assert caught.value.kind is ErrorType.CHAT_INACTIVE
    reopened = await store.append_event(lic, started.chat.id, message(cust, "b"), anyone, LIMIT)
    assert reopened.opened_thread is True
    assert reopened.thread.id != started.thread.id
    assert reopened.thread.order > started.thread.order
    assert reopened.event.order > started.events[0].order
    threads, total = await store.list_threads(lic, started.chat.id, 0, 25, newest_first=False)
    assert total == 2
    assert [t.id for t in threads] == [started.thread.id, reopened.thread.id]


async def test_unknown_chat_is_not_found(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    with pytest.raises(ApiError) as caught:
        await store.append_event(lic, "NOSUCHCHAT", message(cust, "x"), anyone, LIMIT)
    assert caught.value.kind is ErrorType.NOT_FOUND


async def test_chat_of_another_licence_is_not_found(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    other = await store.create_license("Other")
    started = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    with pytest.raises(ApiError) as caught:
        await store.append_event(other.id, started.chat.id, message(cust, "x"), anyone, LIMIT)
    assert caught.value.kind is ErrorType.NOT_FOUND
    assert await store.get_chat(other.id, started.chat.id) is None


async def test_custom_id_duplicate_answers_the_original(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    original = await store.append_event(lic, started.chat.id, message(cust, "hello", "c-1"), anyone, LIMIT)
    again = await store.append_event(lic, started.chat.id, message(cust, "hello, edited", "c-1"), anyone, LIMIT)
    assert original.duplicate is False
    assert again.duplicate is True
    assert again.event.id == original.event.id
    assert again.event.order == original.event.order
    assert again.event.body == {"text": "hello"}
    assert again.event.custom_id == "c-1"
    stored = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert len(stored) == 1


async def test_custom_id_duplicate_after_the_thread_closed(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    original = await store.append_event(lic, started.chat.id, message(cust, "hello", "c-1"), anyone, LIMIT)
    await store.close_thread(lic, started.chat.id, None, anyone)
    again = await store.append_event(lic, started.chat.id, message(cust, "hello", "c-1"), anyone, LIMIT)
    assert again.duplicate is True
    assert again.opened_thread is False
    assert again.event.id == original.event.id
    chat = await store.get_chat(lic, started.chat.id)
    assert chat is not None and chat.active_thread_id is None  # the retry reopened nothing


async def test_custom_id_is_per_author_and_per_chat(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    a = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    b = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    in_a = await store.append_event(lic, a.chat.id, message(cust, "x", "same"), anyone, LIMIT)
    in_b = await store.append_event(lic, b.chat.id, message(cust, "x", "same"), anyone, LIMIT)
    by_other = await store.append_event(lic, a.chat.id, message("agent-1", "x", "same"), anyone, LIMIT)
    assert not in_b.duplicate and not by_other.duplicate
    assert len({in_a.event.id, by_other.event.id}) == 2


async def test_concurrent_custom_id_duplicates_store_once(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    results = await asyncio.gather(
        *(store.append_event(lic, started.chat.id, message(cust, "same", "dup"), anyone, LIMIT) for _ in range(20))
    )
    assert len({r.event.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    stored = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert len(stored) == 1


async def test_failures_in_a_batch_do_not_touch_the_others(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    chat_id = started.chat.id

    def denied(chat: Chat) -> None:
        raise ApiError(ErrorType.AUTHORIZATION, "no")

    calls: list[Coroutine[Any, Any, Appended]] = []
    for i in range(50):
        if i % 5 == 0:
            calls.append(store.append_event(lic, "MISSING", message(cust, f"bad {i}"), anyone, LIMIT))
        elif i % 7 == 0:
            calls.append(store.append_event(lic, chat_id, message(cust, f"denied {i}"), denied, LIMIT))
        else:
            calls.append(store.append_event(lic, chat_id, message(cust, f"good {i}"), anyone, LIMIT))
    results = await asyncio.gather(*calls, return_exceptions=True)

    good_ids = []
    for i, result in enumerate(results):
        if i % 5 == 0:
            assert isinstance(result, ApiError) and result.kind is ErrorType.NOT_FOUND, result
        elif i % 7 == 0:
            assert isinstance(result, ApiError) and result.kind is ErrorType.AUTHORIZATION, result
        else:
            assert not isinstance(result, BaseException), result
            assert result.event.body["text"] == f"good {i}"
            good_ids.append(result.event.id)
    stored = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert sorted(e.id for e in stored) == sorted(good_ids)
    assert all(e.body["text"].startswith("good") for e in stored)
    orders = [e.order for e in stored]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    threads = await store.get_threads(lic, chat_id, [started.thread.id])
    assert threads[0].events_count == len(good_ids)


async def test_failed_start_chat_leaves_nothing_behind(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    # The second initial event repeats the first one's custom_id: the store fails after writing the
    # chat, its thread and one event; all of it must be rolled back.
    events = [message(cust, "a", "same"), message(cust, "b", "same")]
    with pytest.raises(ApiError):
        await store.start_chat(lic, cust, [0], {}, {}, events, LIMIT)
    chats, total = await store.list_customer_chats(lic, cust, 0, 25)
    assert (chats, total) == ([], 0)
    assert await store.active_chats(lic, cust) == []


async def test_active_chat_limit_at_the_11th(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    for _ in range(LIMIT):
        await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)
    with pytest.raises(ApiError) as caught:
        await store.start_chat(lic, cust, [0], {}, {}, [message(cust, "x")], LIMIT)
    assert caught.value.kind is ErrorType.LIMIT_REACHED
    assert caught.value.kind.code == 429
    _, total = await store.list_customer_chats(lic, cust, 0, 25)
    assert total == LIMIT
    # another customer is not affected
    other = await store.create_customer(lic)
    await store.start_chat(lic, other.id, [0], {}, {}, [], LIMIT)


async def test_active_chat_limit_under_concurrency(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    results = await asyncio.gather(
        *(store.start_chat(lic, cust, [0], {}, {}, [], LIMIT) for _ in range(15)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 5
    assert all(isinstance(f, ApiError) and f.kind is ErrorType.LIMIT_REACHED for f in failures)
    assert len(await store.active_chats(lic, cust)) == LIMIT


async def test_closed_chats_free_a_slot_and_reopening_counts(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    chats = [await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT) for _ in range(LIMIT)]
    first = chats[0].chat.id
    await store.close_thread(lic, first, None, anyone)
    await store.start_chat(lic, cust, [0], {}, {}, [], LIMIT)  # the freed slot
    with pytest.raises(ApiError) as caught:
        await store.append_event(lic, first, message(cust, "reopen"), anyone, LIMIT)
    assert caught.value.kind is ErrorType.LIMIT_REACHED
    chat = await store.get_chat(lic, first)
    assert chat is not None and chat.active_thread_id is None
    _, threads = await store.list_threads(lic, first, 0, 25, newest_first=False)
    assert threads == 1


async def test_properties_merge_and_report_changes(store: SqliteStore) -> None:
    lic, cust = await new_customer(store)
    started = await store.start_chat(lic, cust, [0], {"ns": {"a": 1, "b": 2}}, {}, [], LIMIT)
    chat, changed = await store.update_chat_properties(lic, started.chat.id, {"ns": {"a": 1, "b": None}}, anyone)
    assert chat.properties == {"ns": {"a": 1}}
    assert changed == {"ns": {"b": None}}
    reread = await store.get_chat(lic, started.chat.id)
    assert reread is not None and reread.properties == {"ns": {"a": 1}}


async def test_data_and_order_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    first = SqliteStore(path)
    await first.open()
    lic, cust = await new_customer(first)
    started = await first.start_chat(lic, cust, [0], {}, {}, [message(cust, "before")], LIMIT)
    last = await first.append_event(lic, started.chat.id, message(cust, "last"), anyone, LIMIT)
    await first.close()

    second = SqliteStore(path)
    await second.open()
    try:
        stored = (await second.thread_events(lic, [started.thread.id]))[started.thread.id]
        assert [e.body["text"] for e in stored] == ["before", "last"]
        after = await second.append_event(lic, started.chat.id, message(cust, "after"), anyone, LIMIT)
        assert after.event.order > last.event.order
        assert after.event.id not in {e.id for e in stored}
    finally:
        await second.close()


async def test_appends_see_every_change_made_to_the_chat_between_them(store: SqliteStore) -> None:
    """append_event keeps the chats it writes to in memory; whatever else changes the chat or its
    thread in between must show in the next append's answer and in the stored rows."""
    lic, customer = await new_customer(store)
    started = await store.start_chat(lic, customer, [0], {}, {}, [message(customer, "hi")], LIMIT)
    chat_id = started.chat.id
    first = await store.append_event(lic, chat_id, message(customer, "one"), anyone, LIMIT)
    assert first.chat.agent_ids == []

    await store.change_members(lic, chat_id, ["agent-a"], anyone, scopes=[0, 1])
    second = await store.append_event(lic, chat_id, message(customer, "two"), anyone, LIMIT)
    assert second.chat.agent_ids == ["agent-a"] and second.chat.scopes == [0, 1]
    assert second.thread.agent_id == "agent-a"

    await store.update_chat_properties(lic, chat_id, {"ns": {"k": "v"}}, anyone)
    third = await store.append_event(lic, chat_id, message(customer, "three"), anyone, LIMIT)
    assert third.chat.properties == {"ns": {"k": "v"}}

    # A check that refuses is applied to the cached chat too, and changes nothing.
    def refuse(chat: Chat) -> None:
        raise ApiError(ErrorType.AUTHORIZATION, "no")

    with pytest.raises(ApiError):
        await store.append_event(lic, chat_id, message(customer, "refused"), refuse, LIMIT)
    # An idempotent retry answers the original and counts nothing.
    once = await store.append_event(lic, chat_id, message(customer, "four", "c-1"), anyone, LIMIT)
    again = await store.append_event(lic, chat_id, message(customer, "four", "c-1"), anyone, LIMIT)
    assert again.duplicate and again.event.id == once.event.id

    await store.close_thread(lic, chat_id, None, anyone)
    reopened = await store.append_event(lic, chat_id, message(customer, "five"), anyone, LIMIT)
    assert reopened.opened_thread and reopened.thread.id != started.thread.id
    assert reopened.chat.active_thread_id == reopened.thread.id and reopened.chat.agent_ids == []

    [old] = await store.get_threads(lic, chat_id, [started.thread.id])
    events = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    texts = [e.body.get("text") for e in events if e.type == "message"]
    assert texts == ["hi", "one", "two", "three", "four"]
    assert old.events_count == len(events) == len({e.id for e in events})
    assert first.thread.events_count < second.thread.events_count < third.thread.events_count


async def test_a_failed_batch_leaves_no_counted_event_behind(store: SqliteStore) -> None:
    """A failure in a batch rolls it back and replays it; the cached thread must not keep the
    event count of the rolled-back attempt (event ids stay dense, the stored count is right)."""
    lic, customer = await new_customer(store)
    started = await store.start_chat(lic, customer, [0], {}, {}, [], LIMIT)
    chat_id = started.chat.id
    await store.append_event(lic, chat_id, message(customer, "warm"), anyone, LIMIT)
    sends = [store.append_event(lic, chat_id, message(customer, f"m{i}"), anyone, LIMIT) for i in range(5)]
    # A body the store cannot encode fails inside the operation, after the thread's count moved.
    broken = NewEvent(type="message", author_id=customer, body={"text": {"not", "json"}})
    bad = store.append_event(lic, chat_id, broken, anyone, LIMIT)
    results = await asyncio.gather(*sends[:3], bad, *sends[3:], return_exceptions=True)
    assert isinstance(results[3], TypeError)
    assert not [r for r in results[:3] + results[4:] if isinstance(r, BaseException)]
    after = await store.append_event(lic, chat_id, message(customer, "after"), anyone, LIMIT)
    [thread] = await store.get_threads(lic, chat_id, [started.thread.id])
    events = (await store.thread_events(lic, [started.thread.id]))[started.thread.id]
    assert thread.events_count == len(events) == 7  # warm, m0..m4, after
    assert sorted(int(e.id.rsplit("_", 1)[1]) for e in events) == list(range(1, 8))
    assert after.event.id.endswith("_7")
