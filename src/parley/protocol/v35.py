"""The LiveChat-SDK dialect (SPEC §11): v3.5 requests, v3.5 shapes of objects, and push translation.

Pure: no I/O. parley's service speaks the seed's (v3.0) shapes; this module maps a v3.5 request
onto the seed's typed request (so every seed limit and check applies unchanged), maps the seed's
views onto v3.5 objects, and turns a v3.0 push frame into the v3.5 push(es) a v3.5 client expects.

v3.5 requests ignore unknown fields (the real SDKs send fields parley has no use for, such as
`customer_side_storage` or `is_mobile`), but every field parley knows is validated as strictly as
in v3.0: types, ranges and sizes.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
import orjson

from parley.ids import rfc3339_us
from parley.protocol import methods as m
from parley.protocol.envelope import push
from parley.protocol.errors import validation
from parley.protocol.objects import CustomId, GroupId, Id, Namespaced, ShortText, Url

VERSIONS = frozenset({"v3.4", "v3.5", "v3.6", "v3.7"})
"""Path versions answered in this dialect (the methods the SDKs use agree across them)."""

ENVELOPE_KEYS = frozenset({"request_id", "action", "payload"})
"""What the v3.0 envelope parser reads; anything else (customer-sdk's top-level `version`) is dropped."""


class V35(msgspec.Struct, omit_defaults=True):
    """A v3.5 request part: unknown fields are ignored (SPEC §11), known ones typed."""


Visibility = Literal["all", "agents"]
SortOrder = Literal["asc", "desc"]
SessionFields = Annotated[list[dict[str, str]], msgspec.Meta(max_length=100)]


class EventIn(V35, tag_field="type", kw_only=True):
    custom_id: CustomId | None = None
    visibility: Visibility = "all"
    properties: Namespaced | None = None


class MessageIn(EventIn, tag="message"):
    text: str


class SystemMessageIn(EventIn, tag="system_message"):
    text: str = ""


class FormField(V35):
    type: ShortText
    id: ShortText | None = None
    label: ShortText = ""
    answer: Any = None
    answers: Any = None


class FilledFormIn(EventIn, tag="filled_form", kw_only=True):
    form_id: ShortText | None = None
    fields: Annotated[list[FormField], msgspec.Meta(min_length=1, max_length=100)]


class FileIn(EventIn, tag="file"):
    url: Url
    name: ShortText | None = None


class CustomIn(EventIn, tag="custom"):
    content: dict[str, Any]


Event = MessageIn | SystemMessageIn | FilledFormIn | FileIn | CustomIn


class Access(V35):
    group_ids: Annotated[list[GroupId], msgspec.Meta(max_length=100)]


class ThreadIn(V35):
    events: list[Event] | None = None
    properties: Namespaced | None = None


class ChatIn(V35):
    access: Access | None = None
    properties: Namespaced | None = None
    thread: ThreadIn | None = None


class ResumeChatIn(ChatIn, kw_only=True):
    id: Id


class CustomerIn(V35):
    name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")] | None = None
    avatar: Url | None = None
    session_fields: SessionFields | None = None


class CustomerPage(V35):
    url: Url | None = None
    title: ShortText | None = None


class Login(V35):
    token: Annotated[str, msgspec.Meta(max_length=4096)]
    customer: CustomerIn | None = None
    customer_page: CustomerPage | None = None
    referrer: Url | None = None
    group_id: GroupId | None = None
    pushes: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        # Checked while decoding, before the connection counts as logged in: a login that fails
        # must leave the connection as it was (SPEC §2).
        if self.customer is not None or self.customer_page is not None or self.referrer is not None:
            seed_customer(self.customer or CustomerIn(), self.customer_page, self.referrer)


class Empty(V35):
    pass


class ListChats(V35):
    limit: Annotated[int, msgspec.Meta(ge=1, le=25)] = 10
    sort_order: SortOrder = "desc"
    page_id: Annotated[str, msgspec.Meta(max_length=512)] | None = None


class ListThreads(V35):
    chat_id: Id
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    sort_order: SortOrder = "desc"
    page_id: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    min_events_count: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None


class GetChat(V35):
    chat_id: Id
    thread_id: Id | None = None


class StartChat(V35):
    chat: ChatIn = msgspec.field(default_factory=ChatIn)
    active: bool = True
    continuous: bool = False


class ResumeChat(V35):
    chat: ResumeChatIn
    active: bool = True
    continuous: bool = False


class DeactivateChat(V35):
    id: Id


class SendEvent(V35):
    chat_id: Id
    event: Event
    attach_to_last_thread: bool = False


class SendSneakPeek(V35):
    chat_id: Id
    sneak_peek_text: str


class UpdateCustomer(CustomerIn):
    pass


class UpdateCustomerPage(V35):
    url: Url
    title: ShortText | None = None


class SetCustomerSessionFields(V35):
    session_fields: SessionFields


class UpdateChatProperties(V35):
    id: Id
    properties: Namespaced


class UpdateThreadProperties(V35):
    chat_id: Id
    thread_id: Id
    properties: Namespaced


Names = dict[str, Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=100)]]


class DeleteChatProperties(V35):
    id: Id
    properties: Names


class DeleteThreadProperties(V35):
    chat_id: Id
    thread_id: Id
    properties: Names


class MarkEventsAsSeen(V35):
    chat_id: Id
    seen_up_to: Annotated[str, msgspec.Meta(max_length=64)]


class ListGroupStatuses(V35):
    all: bool = False
    group_ids: Annotated[list[GroupId], msgspec.Meta(max_length=100)] | None = None


# -- v3.5 request -> the seed's typed request -----------------------------------------------


def seed_event(event: Event) -> dict[str, Any]:
    """The seed's wire form of a v3.5 event (visibility -> recipients, form answers -> values)."""
    body: dict[str, Any] = msgspec.to_builtins(event)
    body["recipients"] = body.pop("visibility", "all")
    if isinstance(event, FilledFormIn):
        body.pop("form_id", None)
        body["fields"] = [
            {
                "type": f.type,
                "name": f.id or f.label or f.type,
                "label": f.label,
                "value": f.answer if f.answer is not None else f.answers,
            }
            for f in event.fields
        ]
    return body


def check_customer_event(event: Event, field: str) -> None:
    # The seed's message names `recipients`; say it in this dialect's words.
    if event.visibility == "agents":
        raise validation(f'`{field}.visibility` "agents" is for agents only')


def _seed_chat(chat: ChatIn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if chat.access is not None:
        out["scopes"] = {"groups": chat.access.group_ids}
    if chat.properties is not None:
        out["properties"] = chat.properties
    if chat.thread is not None:
        events = chat.thread.events or []
        for i, e in enumerate(events):
            check_customer_event(e, f"chat.thread.events[{i}]")
        thread: dict[str, Any] = {"events": [seed_event(e) for e in events]}
        if chat.thread.properties is not None:
            thread["properties"] = chat.thread.properties
        out["thread"] = thread
    return out


def seed_start_chat(req: StartChat | ResumeChat) -> m.StartChat:
    """The seed's start_chat request, checked by the seed's rules (sizes, counts, scopes)."""
    if not req.active:
        raise validation("`active` false is not supported: a chat starts (or resumes) with an active thread")
    return m.decode(m.StartChat, {"chat": _seed_chat(req.chat)})


def seed_send_event(req: SendEvent) -> m.SendEvent:
    check_customer_event(req.event, "event")
    return m.decode(m.SendEvent, {"chat_id": req.chat_id, "event": seed_event(req.event)})


def session_properties(fields: list[dict[str, str]], field: str = "session_fields") -> dict[str, str]:
    """v3.5 session fields (an ordered list of one-key objects) as the seed's flat customer map."""
    flat: dict[str, str] = {}
    for i, item in enumerate(fields):
        if len(item) != 1:
            raise validation(f"`{field}[{i}]` must hold exactly one key: value pair")
        flat.update(item)
    return flat


def seed_customer(req: CustomerIn, page: CustomerPage | None = None, referrer: str | None = None) -> m.UpdateCustomer:
    """update_customer / login customer fields in the seed's shape (session fields -> properties)."""
    fields: dict[str, Any] = {}
    if req.name is not None:
        fields["name"] = req.name
    if req.email is not None:
        fields["email"] = req.email
    if req.session_fields is not None:
        fields["properties"] = session_properties(req.session_fields)
    seed_page: dict[str, Any] = {}
    if page is not None:
        seed_page.update(msgspec.to_builtins(page))
    if referrer is not None:
        seed_page["referrer"] = referrer
    if seed_page:
        fields["monitoring"] = {"page": seed_page}
    return m.decode(m.UpdateCustomer, {"customer": fields})


def deleted_names(props: dict[str, list[str]]) -> dict[str, dict[str, None]]:
    """delete_*_properties as the seed's update with `null` values (null deletes a name)."""
    return {ns: dict.fromkeys(names) for ns, names in props.items()}


def seen_up_to_seconds(value: str) -> int:
    """`seen_up_to` (RFC 3339) as Unix seconds, the resolution parley keeps last-seen values in."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise validation("`seen_up_to` must be an RFC 3339 date-time, e.g. 2026-11-28T21:42:40.123456Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    seconds = int(parsed.timestamp())
    if seconds < 0:
        raise validation("`seen_up_to` must not be before 1970")
    return seconds


def seconds_rfc3339(seconds: int) -> str:
    return rfc3339_us(seconds * 1_000_000)


# -- page ids ---------------------------------------------------------------------------------


def page_id(offset: int, limit: int, sort_order: str) -> str:
    raw = orjson.dumps({"o": offset, "l": limit, "s": sort_order})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_page_id(value: str) -> tuple[int, int, str]:
    """(offset, limit, sort_order) of a page id this server handed out; `validation` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = orjson.loads(raw)
        offset, limit, order = int(data["o"]), int(data["l"]), str(data["s"])
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise validation("`page_id` is not a page id this server gave out") from None
    if offset < 0 or not 1 <= limit <= 1000 or order not in ("asc", "desc"):
        raise validation("`page_id` is not a page id this server gave out")
    return offset, limit, order


def pages(offset: int, count: int, limit: int, sort_order: str, total: int) -> dict[str, str]:
    """The `next_page_id` / `previous_page_id` around a page of count items from offset."""
    out: dict[str, str] = {}
    if count and offset + count < total:
        out["next_page_id"] = page_id(offset + count, limit, sort_order)
    if offset > 0:
        out["previous_page_id"] = page_id(max(offset - limit, 0), limit, sort_order)
    return out


# -- seed views -> v3.5 objects ---------------------------------------------------------------

_EVENT_DROP = frozenset({"order", "timestamp", "recipients"})


def event(view: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if k not in _EVENT_DROP}
    out["visibility"] = view.get("recipients", "all")
    if view.get("type") == "filled_form":
        out["fields"] = [
            {"type": f.get("type"), "id": f.get("name"), "label": f.get("label", ""), "answer": f.get("value")}
            for f in view.get("fields", [])
        ]
    return out


def session_fields(properties: dict[str, str]) -> list[dict[str, str]]:
    return [{k: v} for k, v in properties.items()]


def user(view: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": view["id"],
        "type": view["type"],
        "name": view.get("name", ""),
        "present": view.get("present", False),
    }
    if view.get("email"):
        out["email"] = view["email"]
    if view["type"] == "customer":
        out["session_fields"] = session_fields(view.get("properties") or {})
    else:
        out["avatar"] = view.get("avatar", "")
    seen = view.get("last_seen_timestamp") or 0
    if seen:
        out["events_seen_up_to"] = seconds_rfc3339(seen)
    return out


def customer(view: dict[str, Any]) -> dict[str, Any]:
    """The customer object of login and get_customer (the requester's own: e-mail always)."""
    out = user(view)
    out["email"] = view.get("email", "")
    return out


def thread(view: dict[str, Any], access: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": view["id"],
        "active": view["active"],
        "user_ids": view["user_ids"],
        "events": [event(e) for e in view.get("events", [])],
        "properties": view.get("properties") or {},
        "created_at": view["created_at"],
    }
    for neighbour in ("previous_thread_id", "next_thread_id"):
        if neighbour in view:
            out[neighbour] = view[neighbour]
    if access is not None:
        out["access"] = access
    return out


def access(view: dict[str, Any]) -> dict[str, Any]:
    return {"group_ids": view.get("scopes", {}).get("groups", [])}


def chat(view: dict[str, Any]) -> dict[str, Any]:
    """A seed chat view (with `thread` or `threads`) as a v3.5 chat."""
    acc = access(view)
    out: dict[str, Any] = {
        "id": view["id"],
        "users": [user(u) for u in view.get("users", [])],
        "access": acc,
        "properties": view.get("properties") or {},
    }
    if "thread" in view:
        out["thread"] = thread(view["thread"], acc)
    if "threads" in view:
        out["threads"] = [thread(t, acc) for t in view["threads"]]
    return out


# -- push translation -------------------------------------------------------------------------

QUEUE_PUSH = "queue_positions_updated"
QUEUE_PUSH_SINGULAR = "queue_position_updated"


def queue_push_name(subscribed: dict[str, list[str]] | None) -> str:
    """SPEC §11 names `queue_positions_updated`; @livechat/customer-sdk subscribes (login `pushes`)
    to `queue_position_updated`: a client that asked for only the singular gets the singular."""
    names = {n for listed in (subscribed or {}).values() for n in listed}
    if QUEUE_PUSH_SINGULAR in names and QUEUE_PUSH not in names:
        return QUEUE_PUSH_SINGULAR
    return QUEUE_PUSH


def _split_properties(payload: dict[str, Any], updated: str, deleted: str) -> list[tuple[str, dict[str, Any]]]:
    """The seed's one update push (null = deleted) as v3.5's *_updated and *_deleted pushes."""
    head = {k: v for k, v in payload.items() if k != "properties"}
    changed: dict[str, dict[str, Any]] = {}
    gone: dict[str, list[str]] = {}
    for ns, values in payload.get("properties", {}).items():
        for name, value in values.items():
            if value is None:
                gone.setdefault(ns, []).append(name)
            else:
                changed.setdefault(ns, {})[name] = value
    out: list[tuple[str, dict[str, Any]]] = []
    if changed:
        out.append((updated, {**head, "properties": changed}))
    if gone:
        out.append((deleted, {**head, "properties": gone}))
    return out


def translate(action: str, payload: dict[str, Any], queue_push: str = QUEUE_PUSH) -> list[tuple[str, dict[str, Any]]]:
    """One seed push as the v3.5 pushes a v3.5 customer connection gets (maybe none)."""
    if action == "incoming_chat_thread":
        return [("incoming_chat", {"chat": chat(payload["chat"])})]
    if action == "incoming_event":
        return [("incoming_event", {**payload, "event": event(payload["event"])})]
    if action == "thread_closed":
        return [("chat_deactivated", payload)]
    if action == "chat_user_added":
        added = {"chat_id": payload["chat_id"], "thread_id": payload.get("thread_id"), "user": user(payload["user"])}
        return [("user_added_to_chat", {**added, "reason": "other"})]
    if action == "chat_user_removed":
        removed = {k: payload.get(k) for k in ("chat_id", "thread_id", "user_id")}
        return [("user_removed_from_chat", {**removed, "reason": "other"})]
    if action == "incoming_typing_indicator":
        indicator = {**payload["typing_indicator"], "visibility": "all"}
        return [("incoming_typing_indicator", {**payload, "typing_indicator": indicator})]
    if action == "chat_properties_updated":
        return _split_properties(payload, "chat_properties_updated", "chat_properties_deleted")
    if action == "chat_thread_properties_updated":
        return _split_properties(payload, "thread_properties_updated", "thread_properties_deleted")
    if action == "customer_updated":
        return [("customer_updated", customer(payload["customer"]))]
    if action == "queue_position_updated":
        return [(queue_push, payload)]
    if action == "last_seen_timestamp_updated":
        if "chat_id" not in payload:
            return []  # v3.5 marks events seen per chat only
        seen = {"user_id": payload["user_id"], "chat_id": payload["chat_id"]}
        return [("events_marked_as_seen", {**seen, "seen_up_to": seconds_rfc3339(payload["timestamp"])})]
    if action == "chat_transferred":
        key = "agent_ids" if payload.get("type") == "agent" else "group_ids"
        moved = {k: payload.get(k) for k in ("chat_id", "thread_id", "requester_id")}
        return [("chat_transferred", {**moved, "reason": "manual", "transferred_to": {key: payload.get("ids", [])}})]
    if action == "chat_scopes_updated":
        return []  # v3.5 has no customer push for access changes (SPEC §11 lists none)
    return [(action, payload)]


TRANSLATED = frozenset(
    {
        "incoming_chat_thread",
        "incoming_event",
        "thread_closed",
        "chat_user_added",
        "chat_user_removed",
        "incoming_typing_indicator",
        "chat_properties_updated",
        "chat_thread_properties_updated",
        "customer_updated",
        "queue_position_updated",
        "last_seen_timestamp_updated",
        "chat_transferred",
        "chat_scopes_updated",
    }
)

_PUSH_PREFIX = b'{"action":"'


def translate_frame(frame: bytes, queue_push: str = QUEUE_PUSH) -> list[bytes]:
    """A frame the bus or the connection hands a v3.5 connection, as v3.5 frames.

    Responses and pushes that are the same in both dialects pass through as the very same bytes,
    found from the frame's first bytes (`envelope.push` writes `action` first), without parsing."""
    if not frame.startswith(_PUSH_PREFIX):
        return [frame]
    end = frame.find(b'"', len(_PUSH_PREFIX))
    if frame[len(_PUSH_PREFIX) : end].decode() not in TRANSLATED:
        return [frame]
    obj = orjson.loads(frame)
    if obj.get("type") != "push":
        return [frame]
    request_id = obj.get("request_id")
    return [push(a, p, request_id) for a, p in translate(obj["action"], obj.get("payload", {}), queue_push)]


class Echo(bytes):
    """A v3.5 push for the requesting connection itself, which stamps it with its request_id
    (SPEC §11: the requester also gets the push its request caused; the SDKs wait for it)."""

    action: str
    payload: dict[str, Any]


def echo(action: str, payload: dict[str, Any]) -> Echo:
    frame = Echo(push(action, payload))
    frame.action = action
    frame.payload = payload
    return frame
