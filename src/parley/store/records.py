"""What the store hands the service: plain records, no I/O, no transport."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class License:
    id: int
    name: str
    organization_id: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Customer:
    id: str
    license_id: int
    name: str | None = None
    email: str | None = None
    monitoring: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    last_seen_timestamp: int = 0
    created_at: int = 0
    banned_until: int = 0


@dataclass(slots=True)
class Agent:
    id: str
    license_id: int
    email: str
    name: str
    password_hash: str
    groups: list[int]
    routing_status: str = "accepting_chats"
    max_chats: int | None = None
    avatar: str = ""
    last_seen_timestamp: int = 0


@dataclass(slots=True)
class StoredEvent:
    id: str
    chat_id: str
    thread_id: str
    order: int
    type: str
    author_id: str | None
    recipients: str
    custom_id: str | None
    body: dict[str, Any]


@dataclass(slots=True)
class Thread:
    id: str
    chat_id: str
    order: int
    active: bool
    user_ids: list[str]
    properties: dict[str, Any]
    events_count: int = 0
    agent_id: str | None = None
    queued: bool = False
    closed_at: int | None = None
    notes_count: int = 0
    """Events only agents see (recipients "agents")."""

    def visible_count(self, side: str) -> int:
        return self.events_count if side == "agent" else self.events_count - self.notes_count


@dataclass(slots=True)
class Chat:
    id: str
    license_id: int
    customer_id: str
    order: int
    scopes: list[int]
    properties: dict[str, Any]
    active_thread_id: str | None
    agent_ids: list[str] = field(default_factory=list)
    threads_count: int = 0


@dataclass(slots=True)
class NewEvent:
    """An event to store: type-specific fields in `body`, server fields added by the store."""

    type: str
    author_id: str | None
    body: dict[str, Any]
    recipients: str = "all"
    custom_id: str | None = None


@dataclass(slots=True)
class Appended:
    chat: Chat
    thread: Thread
    event: StoredEvent
    opened_thread: bool
    duplicate: bool


@dataclass(slots=True)
class Started:
    chat: Chat
    thread: Thread
    events: list[StoredEvent]


@dataclass(slots=True)
class ScopesChange:
    chat: Chat
    added: list[int]
    removed: list[int]


@dataclass(slots=True)
class StoredFile:
    token: str
    license_id: int
    name: str
    content_type: str
    size: int
    data: bytes = b""


@dataclass(slots=True)
class MembersChange:
    chat: Chat
    thread: Thread | None
    added: list[str]
    removed: list[str]
    event: StoredEvent | None
