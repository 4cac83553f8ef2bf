"""`methods.decode` for every customer request (SPEC §4, §5, §8): defaults, ranges, unknown fields,
the `access` alias, and size limits that answer `entity_too_large`."""

from __future__ import annotations

from typing import Any

import pytest

from parley.protocol import methods as m
from parley.protocol.errors import ApiError, ErrorType
from parley.protocol.objects import CustomIn, FileIn, FilledFormIn, MessageIn


def fails(kind: type[m.Base], payload: dict[str, Any], error: ErrorType = ErrorType.VALIDATION) -> str:
    """Decode must fail with `error`; answers its message."""
    with pytest.raises(ApiError) as caught:
        m.decode(kind, payload)
    assert caught.value.kind is error, caught.value.message
    return caught.value.message


def msg(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "text": text, **extra}


# -- login -----------------------------------------------------------------------------------


def test_login_defaults() -> None:
    req = m.decode(m.Login, {"token": "Bearer abc"})
    assert req.token == "Bearer abc"
    assert req.last_chats_limit == 1
    assert req.last_threads_limit == 10
    assert req.customer is None


def test_login_token_is_required() -> None:
    assert "token" in fails(m.Login, {})


@pytest.mark.parametrize("field", ["last_chats_limit", "last_threads_limit"])
@pytest.mark.parametrize("good", [1, 25])
def test_login_limits_accept_their_range(field: str, good: int) -> None:
    assert getattr(m.decode(m.Login, {"token": "t", field: good}), field) == good


@pytest.mark.parametrize("field", ["last_chats_limit", "last_threads_limit"])
@pytest.mark.parametrize("bad", [0, 26, -1, "5", 2.5, True, None])
def test_login_limits_out_of_range_name_the_field(field: str, bad: Any) -> None:
    assert field in fails(m.Login, {"token": "t", field: bad})


def test_login_customer_fields() -> None:
    customer = {
        "name": "Ann",
        "email": "ann@example.com",
        "monitoring": {"page": {"url": "https://a/", "title": "A", "referrer": "https://b/"}, "timezone": "UTC"},
        "properties": {"plan": "pro"},
    }
    req = m.decode(m.Login, {"token": "t", "customer": customer})
    assert req.customer is not None
    assert req.customer.name == "Ann"
    assert req.customer.monitoring is not None and req.customer.monitoring.page is not None
    assert req.customer.monitoring.page.url == "https://a/"
    assert req.customer.properties == {"plan": "pro"}


def test_login_unknown_field() -> None:
    assert "bogus" in fails(m.Login, {"token": "t", "bogus": 1})


def test_login_unknown_nested_customer_field() -> None:
    assert "nickname" in fails(m.Login, {"token": "t", "customer": {"nickname": "x"}})


def test_login_customer_property_too_large() -> None:
    message = fails(m.Login, {"token": "t", "customer": {"properties": {"k": "x" * 4097}}}, ErrorType.ENTITY_TOO_LARGE)
    assert "customer.properties" in message


# -- ping -------------------------------------------------------------------------------------


def test_ping_takes_no_fields() -> None:
    m.decode(m.Empty, {})
    assert "x" in fails(m.Empty, {"x": 1})


# -- get_chats_summary --------------------------------------------------------------------------


def test_get_chats_summary_defaults() -> None:
    req = m.decode(m.GetChatsSummary, {})
    assert (req.pagination.page, req.pagination.limit) == (1, 10)
    req = m.decode(m.GetChatsSummary, {"pagination": {"limit": 25}})
    assert (req.pagination.page, req.pagination.limit) == (1, 25)


@pytest.mark.parametrize(
    ("pagination", "field"),
    [
        ({"page": 0}, "pagination.page"),
        ({"limit": 0}, "pagination.limit"),
        ({"limit": 26}, "pagination.limit"),
        ({"page": "2"}, "pagination.page"),
    ],
)
def test_get_chats_summary_ranges(pagination: dict[str, Any], field: str) -> None:
    assert field in fails(m.GetChatsSummary, {"pagination": pagination})


def test_get_chats_summary_unknown_fields() -> None:
    assert "offset" in fails(m.GetChatsSummary, {"pagination": {"offset": 1}})
    assert "filters" in fails(m.GetChatsSummary, {"filters": {}})


# -- get_chat_threads --------------------------------------------------------------------------


def test_get_chat_threads() -> None:
    req = m.decode(m.GetChatThreads, {"chat_id": "C", "thread_ids": ["T1", "T2"]})
    assert req.chat_id == "C"
    assert req.thread_ids == ["T1", "T2"]


def test_get_chat_threads_needs_both_fields() -> None:
    assert "thread_ids" in fails(m.GetChatThreads, {"chat_id": "C"})
    assert "chat_id" in fails(m.GetChatThreads, {"thread_ids": ["T"]})


@pytest.mark.parametrize("count", [0, 26])
def test_get_chat_threads_counts_1_to_25(count: int) -> None:
    assert "thread_ids" in fails(m.GetChatThreads, {"chat_id": "C", "thread_ids": [f"T{i}" for i in range(count)]})


def test_get_chat_threads_25_ids_is_fine() -> None:
    assert (
        len(m.decode(m.GetChatThreads, {"chat_id": "C", "thread_ids": [f"T{i}" for i in range(25)]}).thread_ids) == 25
    )


def test_get_chat_threads_ids_are_strings() -> None:
    assert "thread_ids" in fails(m.GetChatThreads, {"chat_id": "C", "thread_ids": [1]})
    assert "chat_id" in fails(m.GetChatThreads, {"chat_id": 5, "thread_ids": ["T"]})


# -- get_chat_threads_summary ------------------------------------------------------------------


def test_get_chat_threads_summary_defaults() -> None:
    req = m.decode(m.GetChatThreadsSummary, {"chat_id": "C"})
    assert (req.pagination.offset, req.pagination.limit) == (0, 25)
    req = m.decode(m.GetChatThreadsSummary, {"chat_id": "C", "pagination": {"offset": 7, "limit": 1000}})
    assert (req.pagination.offset, req.pagination.limit) == (7, 1000)


@pytest.mark.parametrize(
    ("pagination", "field"),
    [({"offset": -1}, "pagination.offset"), ({"limit": 0}, "pagination.limit"), ({"limit": 1001}, "pagination.limit")],
)
def test_get_chat_threads_summary_ranges(pagination: dict[str, Any], field: str) -> None:
    assert field in fails(m.GetChatThreadsSummary, {"chat_id": "C", "pagination": pagination})


def test_get_chat_threads_summary_unknown_field() -> None:
    assert "page" in fails(m.GetChatThreadsSummary, {"chat_id": "C", "pagination": {"page": 1}})


# -- start_chat ---------------------------------------------------------------------------------


def test_start_chat_empty_payload() -> None:
    req = m.decode(m.StartChat, {})
    assert req.chat.scopes is None
    assert req.initial_events() == []


def test_start_chat_full() -> None:
    req = m.decode(
        m.StartChat,
        {
            "chat": {
                "scopes": {"groups": [0, 3]},
                "properties": {"source": {"page": "home"}},
                "thread": {"properties": {"ns": {"a": 1}}, "events": [msg("hello")]},
            }
        },
    )
    assert req.chat.scopes is not None and req.chat.scopes.groups == [0, 3]
    assert req.chat.properties == {"source": {"page": "home"}}
    events = req.initial_events()
    assert len(events) == 1 and isinstance(events[0], MessageIn) and events[0].text == "hello"


def test_start_chat_access_is_an_alias_of_scopes() -> None:
    req = m.decode(m.StartChat, {"chat": {"access": {"groups": [2]}}})
    assert req.chat.scopes is not None and req.chat.scopes.groups == [2]


def test_start_chat_access_and_scopes_together() -> None:
    message = fails(m.StartChat, {"chat": {"access": {"groups": [2]}, "scopes": {"groups": [2]}}})
    assert "access" in message or "scopes" in message


def test_start_chat_events_at_chat_level() -> None:
    req = m.decode(m.StartChat, {"chat": {"events": [msg("a"), msg("b")]}})
    assert [e.text for e in req.initial_events() if isinstance(e, MessageIn)] == ["a", "b"]


def test_start_chat_at_most_10_events() -> None:
    m.decode(m.StartChat, {"chat": {"thread": {"events": [msg(str(i)) for i in range(10)]}}})
    assert "events" in fails(m.StartChat, {"chat": {"thread": {"events": [msg(str(i)) for i in range(11)]}}})


def test_start_chat_unknown_fields() -> None:
    assert "colour" in fails(m.StartChat, {"chat": {"colour": "red"}})
    assert "extra" in fails(m.StartChat, {"extra": 1})
    assert "colour" in fails(m.StartChat, {"chat": {"thread": {"colour": 1}}})


def test_start_chat_scopes_shape() -> None:
    assert "groups" in fails(m.StartChat, {"chat": {"scopes": {"groups": [-1]}}})
    assert "groups" in fails(m.StartChat, {"chat": {"scopes": {"groups": ["0"]}}})
    assert "groups" in fails(m.StartChat, {"chat": {"scopes": {}}})
    fails(m.StartChat, {"chat": {"scopes": {"groups": [0, 0]}}})


def test_start_chat_event_text_too_large_is_named() -> None:
    message = fails(
        m.StartChat, {"chat": {"thread": {"events": [msg("x" * (16 * 1024 + 1))]}}}, ErrorType.ENTITY_TOO_LARGE
    )
    assert "text" in message


def test_start_chat_property_value_too_large() -> None:
    message = fails(m.StartChat, {"chat": {"properties": {"ns": {"big": "x" * 4097}}}}, ErrorType.ENTITY_TOO_LARGE)
    assert "chat.properties" in message


def test_start_chat_bad_property_name() -> None:
    assert "chat.properties" in fails(m.StartChat, {"chat": {"properties": {"bad name": {"a": 1}}}})


# -- send_event --------------------------------------------------------------------------------


def test_send_event_message() -> None:
    req = m.decode(m.SendEvent, {"chat_id": "C", "event": msg("hi", custom_id="c-1")})
    assert isinstance(req.event, MessageIn)
    assert req.event.text == "hi"
    assert req.event.custom_id == "c-1"
    assert req.event.recipients == "all"


def test_send_event_other_types() -> None:
    form = m.decode(
        m.SendEvent,
        {"chat_id": "C", "event": {"type": "filled_form", "fields": [{"type": "name", "name": "n", "value": "A"}]}},
    )
    assert isinstance(form.event, FilledFormIn)
    custom = m.decode(m.SendEvent, {"chat_id": "C", "event": {"type": "custom", "content": {"any": [1, {"x": None}]}}})
    assert isinstance(custom.event, CustomIn) and custom.event.content == {"any": [1, {"x": None}]}
    file = m.decode(m.SendEvent, {"chat_id": "C", "event": {"type": "file", "url": "http://h/files/abc"}})
    assert isinstance(file.event, FileIn)


def test_send_event_needs_chat_id_and_event() -> None:
    assert "chat_id" in fails(m.SendEvent, {"event": msg("x")})
    assert "event" in fails(m.SendEvent, {"chat_id": "C"})


def test_send_event_unknown_type() -> None:
    assert "event.type" in fails(m.SendEvent, {"chat_id": "C", "event": {"type": "sticker", "text": "x"}})


def test_send_event_message_needs_text() -> None:
    assert "text" in fails(m.SendEvent, {"chat_id": "C", "event": {"type": "message"}})
    assert "text" in fails(m.SendEvent, {"chat_id": "C", "event": msg("")})


def test_send_event_unknown_field_in_event() -> None:
    assert "colour" in fails(m.SendEvent, {"chat_id": "C", "event": msg("x", colour="red")})


def test_send_event_custom_content_may_hold_anything() -> None:
    # Unknown fields are allowed inside `custom` content (SPEC §3).
    req = m.decode(m.SendEvent, {"chat_id": "C", "event": {"type": "custom", "content": {"whatever": {"deep": 1}}}})
    assert isinstance(req.event, CustomIn)


def test_send_event_properties_may_hold_any_names() -> None:
    req = m.decode(m.SendEvent, {"chat_id": "C", "event": msg("x", properties={"ns": {"anything": [1]}})})
    assert req.event.properties == {"ns": {"anything": [1]}}


def test_send_event_recipients_values() -> None:
    assert "recipients" in fails(m.SendEvent, {"chat_id": "C", "event": msg("x", recipients="nobody")})


def test_message_text_limit_is_16_kib_of_utf8() -> None:
    m.decode(m.SendEvent, {"chat_id": "C", "event": msg("x" * 16384)})
    message = fails(m.SendEvent, {"chat_id": "C", "event": msg("x" * 16385)}, ErrorType.ENTITY_TOO_LARGE)
    assert "event.text" in message


def test_message_text_limit_counts_bytes_not_characters() -> None:
    # 8192 two-byte characters = 16384 bytes: fine; one more is 8193 characters but 16386 bytes.
    m.decode(m.SendEvent, {"chat_id": "C", "event": msg("é" * 8192)})
    fails(m.SendEvent, {"chat_id": "C", "event": msg("é" * 8193)}, ErrorType.ENTITY_TOO_LARGE)
    # 4-byte characters: 4096 of them are exactly 16 KiB.
    m.decode(m.SendEvent, {"chat_id": "C", "event": msg("🦜" * 4096)})
    fails(m.SendEvent, {"chat_id": "C", "event": msg("🦜" * 4097)}, ErrorType.ENTITY_TOO_LARGE)


def test_event_property_value_limit() -> None:
    m.decode(m.SendEvent, {"chat_id": "C", "event": msg("x", properties={"ns": {"v": "y" * 4000}})})
    message = fails(
        m.SendEvent,
        {"chat_id": "C", "event": msg("x", properties={"ns": {"v": "y" * 4097}})},
        ErrorType.ENTITY_TOO_LARGE,
    )
    assert "properties" in message


def test_filled_form_value_limit() -> None:
    field = {"type": "question", "name": "q", "label": "Q", "value": "v" * 4097}
    fails(
        m.SendEvent, {"chat_id": "C", "event": {"type": "filled_form", "fields": [field]}}, ErrorType.ENTITY_TOO_LARGE
    )


# -- send_sneak_peek ---------------------------------------------------------------------------


def test_send_sneak_peek() -> None:
    req = m.decode(m.SendSneakPeek, {"chat_id": "C", "sneak_peek_text": "typing…"})
    assert req.sneak_peek_text == "typing…"
    assert "sneak_peek_text" in fails(m.SendSneakPeek, {"chat_id": "C"})
    assert "sneak_peek_text" in fails(m.SendSneakPeek, {"chat_id": "C", "sneak_peek_text": 5})
    assert "extra" in fails(m.SendSneakPeek, {"chat_id": "C", "sneak_peek_text": "", "extra": 1})


# -- close_thread -------------------------------------------------------------------------------


def test_close_thread() -> None:
    assert m.decode(m.CloseThread, {"chat_id": "C"}).thread_id is None
    assert m.decode(m.CloseThread, {"chat_id": "C", "thread_id": "T"}).thread_id == "T"
    assert "chat_id" in fails(m.CloseThread, {})
    assert "reason" in fails(m.CloseThread, {"chat_id": "C", "reason": "done"})


# -- update_chat_scopes ------------------------------------------------------------------------


def test_update_chat_scopes() -> None:
    req = m.decode(
        m.UpdateChatScopes, {"chat_id": "C", "add_scopes": {"groups": [1]}, "remove_scopes": {"groups": [0]}}
    )
    assert req.add_scopes is not None and req.add_scopes.groups == [1]
    assert req.remove_scopes is not None and req.remove_scopes.groups == [0]
    assert m.decode(m.UpdateChatScopes, {"chat_id": "C", "add_scopes": {"groups": [1]}}).remove_scopes is None


def test_update_chat_scopes_needs_add_or_remove() -> None:
    message = fails(m.UpdateChatScopes, {"chat_id": "C"})
    assert "add_scopes" in message or "remove_scopes" in message


def test_update_chat_scopes_bad_groups() -> None:
    assert "add_scopes" in fails(m.UpdateChatScopes, {"chat_id": "C", "add_scopes": {"groups": [-2]}})
    assert "extra" in fails(m.UpdateChatScopes, {"chat_id": "C", "add_scopes": {"groups": [1], "extra": 1}})


# -- update_customer -----------------------------------------------------------------------------


def test_update_customer_partial() -> None:
    req = m.decode(m.UpdateCustomer, {"customer": {"name": "Bo"}})
    assert req.customer.name == "Bo"
    assert req.customer.email is None
    empty = m.decode(m.UpdateCustomer, {"customer": {}})
    assert empty.customer.name is None


def test_update_customer_validation() -> None:
    assert "customer" in fails(m.UpdateCustomer, {})
    assert "customer.email" in fails(m.UpdateCustomer, {"customer": {"email": "not-an-email"}})
    assert "age" in fails(m.UpdateCustomer, {"customer": {"age": 3}})
    assert "customer.properties" in fails(m.UpdateCustomer, {"customer": {"properties": {"k": 1}}})


def test_update_customer_property_limits() -> None:
    m.decode(m.UpdateCustomer, {"customer": {"properties": {f"k{i}": "v" for i in range(100)}}})
    assert "customer.properties" in fails(
        m.UpdateCustomer, {"customer": {"properties": {f"k{i}": "v" for i in range(101)}}}
    )
    m.decode(m.UpdateCustomer, {"customer": {"properties": {"k": "v" * 4096}}})
    fails(m.UpdateCustomer, {"customer": {"properties": {"k": "v" * 4097}}}, ErrorType.ENTITY_TOO_LARGE)
    assert "customer.properties" in fails(m.UpdateCustomer, {"customer": {"properties": {"bad key": "v"}}})


# -- properties updates -------------------------------------------------------------------------


def test_update_chat_properties() -> None:
    req = m.decode(m.UpdateChatProperties, {"chat_id": "C", "properties": {"ns": {"a": 1, "gone": None}}})
    assert req.properties == {"ns": {"a": 1, "gone": None}}
    assert "properties" in fails(m.UpdateChatProperties, {"chat_id": "C"})
    assert "properties" in fails(m.UpdateChatProperties, {"chat_id": "C", "properties": {"ns": {"a b": 1}}})
    message = fails(
        m.UpdateChatProperties, {"chat_id": "C", "properties": {"ns": {"a": "x" * 4097}}}, ErrorType.ENTITY_TOO_LARGE
    )
    assert "properties.ns.a" in message


def test_update_chat_thread_properties() -> None:
    req = m.decode(m.UpdateChatThreadProperties, {"chat_id": "C", "thread_id": "T", "properties": {"ns": {"a": [1]}}})
    assert (req.chat_id, req.thread_id) == ("C", "T")
    assert "thread_id" in fails(m.UpdateChatThreadProperties, {"chat_id": "C", "properties": {}})
    fails(
        m.UpdateChatThreadProperties,
        {"chat_id": "C", "thread_id": "T", "properties": {"ns": {"a": ["x" * 4097]}}},
        ErrorType.ENTITY_TOO_LARGE,
    )


# -- update_last_seen_timestamp --------------------------------------------------------------------


def test_update_last_seen_timestamp() -> None:
    req = m.decode(m.UpdateLastSeenTimestamp, {})
    assert req.timestamp is None and req.chat_id is None
    req = m.decode(m.UpdateLastSeenTimestamp, {"timestamp": 1_700_000_000, "chat_id": "C"})
    assert (req.timestamp, req.chat_id) == (1_700_000_000, "C")
    assert "timestamp" in fails(m.UpdateLastSeenTimestamp, {"timestamp": -1})
    assert "timestamp" in fails(m.UpdateLastSeenTimestamp, {"timestamp": "now"})
    assert "user_id" in fails(m.UpdateLastSeenTimestamp, {"user_id": "x"})
