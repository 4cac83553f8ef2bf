"""Typed requests of every method (SPEC §5, §7) and `decode`, which turns a payload into one.

Limits the seed gives as ranges are msgspec constraints, so a number out of range is a
`validation` error that names the field; sizes answer `entity_too_large` via `objects.check_*`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from parley.protocol import limits
from parley.protocol.errors import validation
from parley.protocol.objects import (
    Base,
    CustomerFields,
    Event,
    GroupId,
    Id,
    Namespaced,
    Scopes,
    check_customer_properties,
    check_event,
    check_properties,
    check_scopes,
)

T = TypeVar("T", bound=Base)


class Login(Base):
    token: Annotated[str, msgspec.Meta(max_length=4096)]
    last_chats_limit: Annotated[int, msgspec.Meta(ge=1, le=25)] = 1
    last_threads_limit: Annotated[int, msgspec.Meta(ge=1, le=25)] = 10
    customer: CustomerFields | None = None


class AgentLogin(Base):
    token: Annotated[str, msgspec.Meta(max_length=4096)]
    reconnect: bool = False


class Empty(Base):
    pass


class PagePagination(Base):
    page: Annotated[int, msgspec.Meta(ge=1)] = 1
    limit: Annotated[int, msgspec.Meta(ge=1, le=25)] = 10


class GetChatsSummary(Base):
    pagination: PagePagination = msgspec.field(default_factory=PagePagination)


class GetChatThreads(Base):
    chat_id: Id
    thread_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=limits.THREAD_IDS_MAX)]


class OffsetPagination(Base):
    offset: Annotated[int, msgspec.Meta(ge=0)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 25


class GetChatThreadsSummary(Base):
    chat_id: Id
    pagination: OffsetPagination = msgspec.field(default_factory=OffsetPagination)


class ThreadIn(Base):
    events: list[Event] | None = None
    properties: Namespaced | None = None


class ChatIn(Base):
    scopes: Scopes | None = None
    properties: Namespaced | None = None
    thread: ThreadIn | None = None
    events: list[Event] | None = None


class StartChat(Base):
    chat: ChatIn = msgspec.field(default_factory=ChatIn)

    def initial_events(self) -> list[Event]:
        return [*(self.chat.thread.events or [] if self.chat.thread else []), *(self.chat.events or [])]


class SendEvent(Base):
    chat_id: Id
    event: Event


class SendSneakPeek(Base):
    chat_id: Id
    sneak_peek_text: str


class CloseThread(Base):
    chat_id: Id
    thread_id: Id | None = None


class UpdateChatScopes(Base):
    chat_id: Id
    add_scopes: Scopes | None = None
    remove_scopes: Scopes | None = None


class UpdateCustomer(Base):
    customer: CustomerFields


class UpdateChatProperties(Base):
    chat_id: Id
    properties: Namespaced


class UpdateChatThreadProperties(Base):
    chat_id: Id
    thread_id: Id
    properties: Namespaced


class UpdateLastSeenTimestamp(Base):
    timestamp: Annotated[int, msgspec.Meta(ge=0)] | None = None
    chat_id: Id | None = None


# Agent-only requests (SPEC §7).


class AgentChatsFilters(Base):
    status: Literal["active", "queued", "closed"] | None = None
    mine: bool | None = None


class AgentGetChatsSummary(Base):
    filters: AgentChatsFilters = msgspec.field(default_factory=AgentChatsFilters)
    pagination: PagePagination = msgspec.field(default_factory=PagePagination)


DateStr = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class ArchiveFilters(Base):
    query: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    date_from: DateStr | None = None
    date_to: DateStr | None = None


class ArchivePagination(Base):
    page: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 25


class GetArchives(Base):
    filters: ArchiveFilters = msgspec.field(default_factory=ArchiveFilters)
    pagination: ArchivePagination = msgspec.field(default_factory=ArchivePagination)


class ChatUser(Base):
    chat_id: Id
    user_id: Id
    user_type: Literal["agent"]


class TransferTarget(Base):
    type: Literal["agent", "group"]
    ids: Annotated[list[Id | GroupId], msgspec.Meta(min_length=1, max_length=25)]


class TransferChat(Base):
    chat_id: Id
    target: TransferTarget
    force: bool = False


class SendTypingIndicator(Base):
    chat_id: Id
    is_typing: bool
    recipients: Literal["all", "agents"] = "all"


class SetRoutingStatus(Base):
    status: Literal["accepting_chats", "not_accepting_chats"]
    agent_id: Id | None = None


class Ban(Base):
    days: Annotated[int, msgspec.Meta(ge=1, le=365)]


class BanCustomer(Base):
    customer_id: Id
    ban: Ban


def _fold_access(payload: dict[str, Any]) -> dict[str, Any]:
    """`access` is accepted as a synonym of `scopes` in requests (SPEC §4)."""
    if "access" not in payload:
        return payload
    if "scopes" in payload:
        raise validation("give either `scopes` or `access`, not both")
    folded = dict(payload)
    folded["scopes"] = folded.pop("access")
    return folded


def _fold_start_chat(payload: dict[str, Any]) -> dict[str, Any]:
    chat = payload.get("chat")
    if isinstance(chat, dict):
        return {**payload, "chat": _fold_access(chat)}
    return payload


def _check_start_chat(req: StartChat) -> None:
    check_scopes(req.chat.scopes, "chat.scopes")
    if req.chat.scopes is not None and not req.chat.scopes.groups:
        raise validation("`chat.scopes.groups` must name at least one group")
    check_properties(req.chat.properties, "chat.properties")
    if req.chat.thread:
        check_properties(req.chat.thread.properties, "chat.thread.properties")
    events = req.initial_events()
    if len(events) > limits.INITIAL_EVENTS_MAX:
        raise validation(f"`chat.thread.events` holds at most {limits.INITIAL_EVENTS_MAX} events")
    for i, event in enumerate(events):
        check_event(event, f"chat.thread.events[{i}]")


def _check_scopes_update(req: UpdateChatScopes) -> None:
    if req.add_scopes is None and req.remove_scopes is None:
        raise validation("give `add_scopes`, `remove_scopes` or both")
    check_scopes(req.add_scopes, "add_scopes")
    check_scopes(req.remove_scopes, "remove_scopes")


def _check_customer(fields: CustomerFields | None) -> None:
    if fields is not None:
        check_customer_properties(fields.properties)


_FOLDS: dict[type, Callable[[dict[str, Any]], dict[str, Any]]] = {
    StartChat: _fold_start_chat,
}

_CHECKS: dict[type, Callable[[Any], None]] = {
    StartChat: _check_start_chat,
    SendEvent: lambda r: check_event(r.event),
    UpdateChatScopes: _check_scopes_update,
    UpdateCustomer: lambda r: _check_customer(r.customer),
    Login: lambda r: _check_customer(r.customer),
    UpdateChatProperties: lambda r: check_properties(r.properties),
    UpdateChatThreadProperties: lambda r: check_properties(r.properties),
}


def decode(kind: type[T], payload: dict[str, Any]) -> T:
    """Validate a payload into `kind`; raises ApiError (validation / entity_too_large)."""
    fold = _FOLDS.get(kind)
    if fold is not None:
        payload = fold(payload)
    try:
        req = msgspec.convert(payload, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise validation(_humane(str(exc))) from None
    check = _CHECKS.get(kind)
    if check is not None:
        check(req)
    return req


def _humane(message: str) -> str:
    # msgspec says "... - at `$.chat.scopes`"; clients know the payload, not "$".
    return message.replace("`$.", "`").replace("`$`", "payload").replace("`$[", "`[")
