"""The LiveChat-SDK dialect's pure layer (SPEC §11): v3.5 requests onto the seed's, seed views and
pushes onto v3.5 shapes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from parley.protocol import methods as m
from parley.protocol import v35
from parley.protocol.envelope import push, response
from parley.protocol.errors import ApiError, ErrorType
from parley.protocol.objects import MessageIn

CUSTOMER = {
    "id": "c1",
    "type": "customer",
    "name": "Ann",
    "email": "ann@example.com",
    "present": True,
    "last_seen_timestamp": 1_700_000_000,
    "monitoring": {"page": {"url": "", "title": "", "referrer": ""}, "timezone": ""},
    "properties": {"plan": "gold"},
}
AGENT = {
    "id": "a1",
    "type": "agent",
    "name": "Bob",
    "avatar": "",
    "present": True,
    "last_seen_timestamp": 0,
    "routing_status": "accepting_chats",
}
EVENT = {
    "id": "T1_1",
    "type": "message",
    "order": 1_700_000_000_123_456,
    "author_id": "c1",
    "created_at": "2023-11-14T22:13:20.123456Z",
    "timestamp": 1_700_000_000,
    "recipients": "all",
    "text": "hi",
}
THREAD = {
    "id": "T1",
    "active": True,
    "order": 1_700_000_000_000_000,
    "created_at": "2023-11-14T22:13:20.000000Z",
    "user_ids": ["c1", "a1"],
    "events": [EVENT],
    "properties": {"ns": {"k": 1}},
}
CHAT = {
    "id": "C1",
    "order": 1,
    "users": [CUSTOMER, AGENT],
    "properties": {},
    "scopes": {"groups": [0, 2]},
    "thread": THREAD,
}


def error_of(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args)
    return info.value


# -- requests ------------------------------------------------------------------------------


def test_unknown_fields_are_ignored_at_every_level() -> None:
    payload = {
        "active": True,
        "continuous": True,
        "whatever": {"x": 1},
        "chat": {"users": [], "thread": {"events": [{"type": "message", "text": "hi", "postback": {}, "z": 1}]}},
    }
    req = m.decode(v35.StartChat, payload)
    seed = v35.seed_start_chat(req)
    assert isinstance(seed, m.StartChat)
    [event] = seed.initial_events()
    assert isinstance(event, MessageIn)
    assert event.text == "hi"


def test_login_ignores_customer_sdk_extras_and_keeps_what_it_knows() -> None:
    payload = {
        "token": "Bearer t",
        "customer": {"name": "Ann"},
        "customer_side_storage": {},
        "is_mobile": False,
        "application": {"name": "customer_sdk", "version": "4.0.2"},
        "pushes": {"3.5": ["incoming_chat", "queue_position_updated"]},
        "customer_page": {"url": "https://shop.example/", "title": "Shop"},
        "referrer": "https://search.example/",
    }
    req = m.decode(v35.Login, payload)
    assert req.token == "Bearer t"
    seed = v35.seed_customer(req.customer or v35.CustomerIn(), req.customer_page, req.referrer)
    assert seed.customer.name == "Ann"
    assert seed.customer.monitoring is not None and seed.customer.monitoring.page is not None
    assert seed.customer.monitoring.page.url == "https://shop.example/"
    assert seed.customer.monitoring.page.referrer == "https://search.example/"


@pytest.mark.parametrize(
    ("kind", "payload", "names"),
    [
        (v35.SendEvent, {"chat_id": 5, "event": {"type": "message", "text": "x"}}, "chat_id"),
        (v35.SendEvent, {"chat_id": "C", "event": {"type": "rich_message"}}, "type"),
        (v35.SendEvent, {"chat_id": "C", "event": {"type": "message", "text": "x", "visibility": "x"}}, "visibility"),
        (v35.ListChats, {"limit": 26}, "limit"),
        (v35.ListChats, {"sort_order": "up"}, "sort_order"),
        (v35.ListThreads, {"chat_id": "C", "limit": 0}, "limit"),
        (v35.ListThreads, {"chat_id": "C", "min_events_count": 101}, "min_events_count"),
        (v35.ListGroupStatuses, {"group_ids": ["1"]}, "group_ids"),
        (v35.DeactivateChat, {}, "id"),
        (v35.MarkEventsAsSeen, {"chat_id": "C"}, "seen_up_to"),
        (v35.Login, {"token": "t", "customer": {"email": "not an address"}}, "customer.email"),
        (v35.Login, {"token": "t", "customer": {"session_fields": [{"a": 1}]}}, "session_fields"),
        (v35.UpdateCustomer, {"name": "x" * 257}, "name"),
        (v35.DeleteChatProperties, {"id": "C", "properties": {"ns": "k"}}, "properties"),
    ],
)
def test_known_fields_are_still_typed(kind: type, payload: dict[str, Any], names: str) -> None:
    err = error_of(m.decode, kind, payload)
    assert err.kind is ErrorType.VALIDATION
    assert names in err.message


def test_login_with_a_bad_session_field_fails_while_decoding() -> None:
    # Before the connection counts as logged in: the failed login changes nothing.
    err = error_of(m.decode, v35.Login, {"token": "t", "customer": {"session_fields": [{"a": "1", "b": "2"}]}})
    assert err.kind is ErrorType.VALIDATION
    assert "session_fields[0]" in err.message


def test_over_limit_sizes_answer_the_seed_errors() -> None:
    big = {"chat": {"thread": {"events": [{"type": "message", "text": "é" * 8193}]}}}
    err = error_of(v35.seed_start_chat, m.decode(v35.StartChat, big))
    assert err.kind is ErrorType.ENTITY_TOO_LARGE
    many = {"chat": {"thread": {"events": [{"type": "message", "text": "x"}] * 11}}}
    assert error_of(v35.seed_start_chat, m.decode(v35.StartChat, many)).kind is ErrorType.VALIDATION
    prop = {"chat": {"properties": {"ns": {"k": "x" * 5000}}}}
    assert error_of(v35.seed_start_chat, m.decode(v35.StartChat, prop)).kind is ErrorType.ENTITY_TOO_LARGE
    fields = {"session_fields": [{f"k{i}": "v"} for i in range(101)]}
    assert error_of(m.decode, v35.UpdateCustomer, fields).kind is ErrorType.VALIDATION
    value = v35.UpdateCustomer(session_fields=[{"k": "v" * 5000}])
    assert error_of(v35.seed_customer, value).kind is ErrorType.ENTITY_TOO_LARGE


def test_customers_cannot_write_for_agents_or_as_the_server() -> None:
    note = m.decode(v35.SendEvent, {"chat_id": "C", "event": {"type": "message", "text": "x", "visibility": "agents"}})
    err = error_of(v35.seed_send_event, note)
    assert err.kind is ErrorType.VALIDATION and "visibility" in err.message
    inactive = m.decode(v35.StartChat, {"active": False})
    assert "active" in error_of(v35.seed_start_chat, inactive).message


def test_access_becomes_scopes_and_visibility_recipients() -> None:
    payload = {"chat": {"access": {"group_ids": [0, 3]}, "thread": {"events": [{"type": "message", "text": "x"}]}}}
    seed = v35.seed_start_chat(m.decode(v35.StartChat, payload))
    assert seed.chat.scopes is not None and seed.chat.scopes.groups == [0, 3]
    assert seed.initial_events()[0].recipients == "all"
    bad = {"chat": {"access": {"group_ids": []}}}
    assert error_of(v35.seed_start_chat, m.decode(v35.StartChat, bad)).kind is ErrorType.VALIDATION


def test_filled_form_answers_map_to_seed_values_and_back() -> None:
    event = {
        "type": "filled_form",
        "form_id": "F1",
        "fields": [{"type": "email", "id": "e", "label": "E-mail", "answer": "a@b.c"}],
    }
    req = m.decode(v35.SendEvent, {"chat_id": "C", "event": event})
    seed = v35.seed_send_event(req)
    assert seed.event.fields[0].name == "e" and seed.event.fields[0].value == "a@b.c"
    stored = {**EVENT, "type": "filled_form", "fields": [{"type": "email", "name": "e", "label": "E-mail", "value": 1}]}
    assert v35.event(stored)["fields"] == [{"type": "email", "id": "e", "label": "E-mail", "answer": 1}]


def test_session_fields_are_the_flat_customer_properties() -> None:
    assert v35.session_properties([{"a": "1"}, {"b": "2"}]) == {"a": "1", "b": "2"}
    assert v35.session_fields({"a": "1", "b": "2"}) == [{"a": "1"}, {"b": "2"}]


def test_delete_names_are_null_updates() -> None:
    assert v35.deleted_names({"ns": ["a", "b"]}) == {"ns": {"a": None, "b": None}}


def test_seen_up_to_parses_rfc3339_and_rejects_the_rest() -> None:
    assert v35.seen_up_to_seconds("2023-11-14T22:13:20.999999Z") == 1_700_000_000
    assert v35.seen_up_to_seconds("2023-11-14T23:13:20+01:00") == 1_700_000_000
    assert v35.seconds_rfc3339(1_700_000_000) == "2023-11-14T22:13:20.000000Z"
    for bad in ("yesterday", "", "1969-01-01T00:00:00Z"):
        assert error_of(v35.seen_up_to_seconds, bad).kind is ErrorType.VALIDATION


def test_page_ids_round_trip_and_foreign_ones_are_refused() -> None:
    token = v35.page_id(20, 10, "asc")
    assert v35.read_page_id(token) == (20, 10, "asc")
    for bad in ("nope", v35.page_id(-1, 10, "asc"), v35.page_id(0, 0, "desc"), "e30"):
        assert error_of(v35.read_page_id, bad).kind is ErrorType.VALIDATION
    assert v35.pages(0, 10, 10, "desc", 25) == {"next_page_id": v35.page_id(10, 10, "desc")}
    assert v35.pages(20, 5, 10, "desc", 25) == {"previous_page_id": v35.page_id(10, 10, "desc")}
    assert v35.pages(0, 3, 10, "desc", 3) == {}


# -- views ---------------------------------------------------------------------------------


def test_chat_view_has_v35_shape() -> None:
    chat = v35.chat(CHAT)
    assert chat["access"] == {"group_ids": [0, 2]}
    assert "scopes" not in chat and "order" not in chat
    customer, agent = chat["users"]
    assert customer["session_fields"] == [{"plan": "gold"}]
    assert customer["events_seen_up_to"] == "2023-11-14T22:13:20.000000Z"
    assert "monitoring" not in customer and "properties" not in customer
    assert "events_seen_up_to" not in agent and agent["avatar"] == ""
    thread = chat["thread"]
    assert thread["access"] == chat["access"] and thread["created_at"] == THREAD["created_at"]
    assert "order" not in thread
    [event] = thread["events"]
    assert event == {
        "id": "T1_1",
        "type": "message",
        "author_id": "c1",
        "created_at": EVENT["created_at"],
        "visibility": "all",
        "text": "hi",
    }


# -- pushes --------------------------------------------------------------------------------


def test_push_names_and_shapes() -> None:
    [(name, payload)] = v35.translate("incoming_chat_thread", {"chat": CHAT})
    assert name == "incoming_chat" and payload["chat"]["thread"]["id"] == "T1"
    [(name, payload)] = v35.translate("incoming_event", {"chat_id": "C1", "thread_id": "T1", "event": EVENT})
    assert name == "incoming_event" and payload["event"]["visibility"] == "all" and "order" not in payload["event"]
    closed = {"chat_id": "C1", "thread_id": "T1", "user_id": "a1"}
    assert v35.translate("thread_closed", closed) == [("chat_deactivated", closed)]
    added = {"chat_id": "C1", "thread_id": "T1", "user": AGENT, "user_type": "agent"}
    [(name, payload)] = v35.translate("chat_user_added", added)
    assert name == "user_added_to_chat" and payload["user"]["id"] == "a1" and "user_type" not in payload
    removed = {"chat_id": "C1", "thread_id": "T1", "user_id": "a1", "user_type": "agent"}
    [(name, payload)] = v35.translate("chat_user_removed", removed)
    assert name == "user_removed_from_chat" and payload["user_id"] == "a1" and "user_type" not in payload
    typing = {"chat_id": "C1", "thread_id": "T1", "typing_indicator": {"author_id": "a1", "is_typing": True}}
    [(name, payload)] = v35.translate("incoming_typing_indicator", typing)
    assert name == "incoming_typing_indicator" and payload["typing_indicator"]["visibility"] == "all"
    [(name, payload)] = v35.translate("customer_updated", {"chat_id": "C1", "customer": CUSTOMER})
    assert name == "customer_updated" and payload["id"] == "c1" and payload["session_fields"] == [{"plan": "gold"}]
    moved = {"chat_id": "C1", "thread_id": "T1", "requester_id": "a1", "type": "group", "ids": [2]}
    [(name, payload)] = v35.translate("chat_transferred", moved)
    assert payload["transferred_to"] == {"group_ids": [2]}
    assert v35.translate("chat_scopes_updated", {"chat_id": "C1"}) == []
    assert v35.translate("customer_disconnected", {"reason": "x"}) == [("customer_disconnected", {"reason": "x"})]


def test_property_updates_split_into_updated_and_deleted() -> None:
    props = {"ns": {"a": 1, "b": None}, "other": {"c": None}}
    out = v35.translate("chat_properties_updated", {"chat_id": "C1", "properties": props})
    assert out == [
        ("chat_properties_updated", {"chat_id": "C1", "properties": {"ns": {"a": 1}}}),
        ("chat_properties_deleted", {"chat_id": "C1", "properties": {"ns": ["b"], "other": ["c"]}}),
    ]
    thread = {"chat_id": "C", "thread_id": "T", "properties": {"n": {"x": 2}}}
    assert v35.translate("chat_thread_properties_updated", thread) == [("thread_properties_updated", thread)]


def test_last_seen_is_events_marked_as_seen_per_chat_only() -> None:
    [(name, payload)] = v35.translate(
        "last_seen_timestamp_updated", {"user_id": "a1", "chat_id": "C1", "timestamp": 1_700_000_000}
    )
    assert name == "events_marked_as_seen"
    assert payload == {"user_id": "a1", "chat_id": "C1", "seen_up_to": "2023-11-14T22:13:20.000000Z"}
    assert v35.translate("last_seen_timestamp_updated", {"user_id": "a1", "timestamp": 1}) == []


def test_queue_push_name_follows_the_subscription() -> None:
    queue = {"chat_id": "C1", "thread_id": "T1", "queue": {"position": 2, "wait_time": 120}}
    assert v35.translate("queue_position_updated", queue) == [("queue_positions_updated", queue)]
    assert v35.queue_push_name(None) == "queue_positions_updated"
    assert v35.queue_push_name({"3.5": ["incoming_chat", "queue_position_updated"]}) == "queue_position_updated"
    both = {"3.5": ["queue_position_updated", "queue_positions_updated"]}
    assert v35.queue_push_name(both) == "queue_positions_updated"
    singular = v35.translate("queue_position_updated", queue, "queue_position_updated")
    assert singular == [("queue_position_updated", queue)]


def test_frames_that_need_no_translation_pass_as_the_same_bytes() -> None:
    answer = response("send_event", {"event_id": "E"}, "r1")
    assert v35.translate_frame(answer)[0] is answer
    same = push("customer_disconnected", {"reason": "ping_timeout"})
    assert v35.translate_frame(same)[0] is same
    error = b'{"type":"response","success":false,"payload":{}}'
    assert v35.translate_frame(error)[0] is error


def test_frames_are_translated_and_keep_their_request_id() -> None:
    frame = push("thread_closed", {"chat_id": "C1", "thread_id": "T1"}, "r9")
    [out] = v35.translate_frame(frame)
    assert orjson.loads(out) == {
        "action": "chat_deactivated",
        "type": "push",
        "payload": {"chat_id": "C1", "thread_id": "T1"},
        "request_id": "r9",
    }
    assert v35.translate_frame(push("chat_scopes_updated", {"chat_id": "C1"})) == []


def test_echo_is_a_frame_that_remembers_its_push() -> None:
    frame = v35.echo("incoming_event", {"chat_id": "C1"})
    assert isinstance(frame, bytes)
    assert orjson.loads(bytes(frame))["action"] == "incoming_event"
    assert frame.action == "incoming_event" and frame.payload == {"chat_id": "C1"}
