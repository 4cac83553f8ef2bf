"""The Store interface the service is written against; SQLite and PostgreSQL implement it.

Every mutating method is one atomic step: it either applies completely or raises (usually
ApiError) and changes nothing. `access` callbacks let the service check who may touch a chat
inside that same step, so no check-then-act gap opens between a read and a write.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

from parley.store.records import (
    Agent,
    Appended,
    Chat,
    Customer,
    License,
    MembersChange,
    NewEvent,
    ScopesChange,
    Started,
    StoredEvent,
    StoredFile,
    Thread,
)

ChatCheck = Callable[[Chat], None]
PropsChange = tuple[Chat, dict[str, Any]]
"""The chat touched, and only the property names that really changed (null = deleted)."""
ChatExport = tuple[Chat, list[Thread], dict[str, list[StoredEvent]]]


class Store(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise unless the database answers."""

    # settings that must outlive a process (signing key, cluster id)
    @abstractmethod
    async def meta(self, key: str, default: Callable[[], str]) -> str:
        """The value stored under key, storing default() first when there is none."""

    # tenants and people
    @abstractmethod
    async def create_license(self, name: str) -> License: ...

    @abstractmethod
    async def get_license(self, license_id: int) -> License | None: ...

    @abstractmethod
    async def get_license_by_org(self, organization_id: str) -> License | None: ...

    @abstractmethod
    async def update_license_settings(self, license_id: int, changes: dict[str, Any]) -> License:
        """Merge changes into the licence's settings (`license_not_found` for an unknown one)."""

    @abstractmethod
    async def create_group(self, license_id: int, name: str, group_id: int | None = None) -> int: ...

    @abstractmethod
    async def group_ids(self, license_id: int) -> set[int]: ...

    @abstractmethod
    async def create_agent(
        self, license_id: int, email: str, name: str, password_hash: str, groups: list[int], max_chats: int | None
    ) -> Agent: ...

    @abstractmethod
    async def list_agents(self, license_id: int) -> list[Agent]: ...

    @abstractmethod
    async def get_agent_by_email(self, license_id: int, email: str) -> Agent | None: ...

    @abstractmethod
    async def get_agents(self, license_id: int, agent_ids: list[str]) -> list[Agent]: ...

    @abstractmethod
    async def set_routing_status(self, license_id: int, agent_id: str, status: str) -> None: ...

    @abstractmethod
    async def create_customer(self, license_id: int) -> Customer: ...

    @abstractmethod
    async def get_customer(self, license_id: int, customer_id: str) -> Customer | None: ...

    @abstractmethod
    async def get_customers(self, license_id: int, customer_ids: list[str]) -> list[Customer]: ...

    @abstractmethod
    async def update_customer(self, license_id: int, customer_id: str, changes: dict[str, Any]) -> Customer:
        """Merge `changes` (name, email, monitoring, properties) into the customer."""

    @abstractmethod
    async def ban_customer(self, license_id: int, customer_id: str, until: int) -> None: ...

    @abstractmethod
    async def set_last_seen(self, license_id: int, user_id: str, chat_id: str | None, timestamp: int) -> int:
        """Raise the stored value to timestamp (never lower it); answer the stored value."""

    # chats
    @abstractmethod
    async def start_chat(
        self,
        license_id: int,
        customer_id: str,
        scopes: list[int],
        properties: dict[str, Any],
        thread_properties: dict[str, Any],
        events: list[NewEvent],
        active_limit: int,
    ) -> Started: ...

    @abstractmethod
    async def append_event(
        self, license_id: int, chat_id: str, event: NewEvent, check: ChatCheck, active_limit: int
    ) -> Appended:
        """Store event in the chat's active thread, opening a new thread when there is none."""

    @abstractmethod
    async def close_thread(self, license_id: int, chat_id: str, thread_id: str | None, check: ChatCheck) -> Thread: ...

    @abstractmethod
    async def update_chat_scopes(
        self, license_id: int, chat_id: str, add: list[int], remove: list[int], check: ChatCheck
    ) -> ScopesChange: ...

    @abstractmethod
    async def update_chat_properties(
        self, license_id: int, chat_id: str, properties: dict[str, Any], check: ChatCheck
    ) -> PropsChange: ...

    @abstractmethod
    async def update_thread_properties(
        self, license_id: int, chat_id: str, thread_id: str, properties: dict[str, Any], check: ChatCheck
    ) -> PropsChange: ...

    @abstractmethod
    async def get_chat(self, license_id: int, chat_id: str) -> Chat | None: ...

    @abstractmethod
    async def list_customer_chats(
        self, license_id: int, customer_id: str, offset: int, limit: int
    ) -> tuple[list[Chat], int]:
        """Newest first; answers (page, total)."""

    @abstractmethod
    async def active_chats(self, license_id: int, customer_id: str) -> list[Chat]:
        """The customer's chats that have an active thread."""

    @abstractmethod
    async def get_threads(self, license_id: int, chat_id: str, thread_ids: list[str]) -> list[Thread]: ...

    @abstractmethod
    async def list_threads(
        self, license_id: int, chat_id: str, offset: int, limit: int, newest_first: bool
    ) -> tuple[list[Thread], int]: ...

    @abstractmethod
    async def thread_events(self, license_id: int, thread_ids: list[str]) -> dict[str, list[StoredEvent]]:
        """Events per thread, in order."""

    @abstractmethod
    async def chat_last_seen(self, license_id: int, chat_id: str) -> dict[str, int]: ...

    # agents in chats, routing and archives
    @abstractmethod
    async def change_members(
        self,
        license_id: int,
        chat_id: str,
        agent_ids: list[str],
        check: ChatCheck,
        *,
        scopes: list[int] | None = None,
        system: tuple[str, str] | None = None,
        thread_id: str | None = None,
        only_if_unassigned: bool = False,
    ) -> MembersChange:
        """Make agent_ids the chat's agents (the first is the active thread's assignee; none
        puts the thread back in the queue), optionally replace its scopes, and store a
        system message (type, text) in the active thread. With thread_id: `chat_inactive`
        unless that thread is still the active one. With only_if_unassigned (the router's
        assignments): `AlreadyAssigned` (a `chat_inactive` ApiError) when the chat has an agent
        already, so that routers of several nodes never give one thread to two agents."""

    @abstractmethod
    async def queued_threads(self, license_id: int) -> list[tuple[Chat, Thread]]:
        """Active threads waiting for an agent, oldest first."""

    @abstractmethod
    async def agent_loads(self, license_id: int) -> dict[str, int]:
        """Active chats per agent."""

    @abstractmethod
    async def list_agent_chats(
        self, license_id: int, groups: list[int], status: str | None, member_id: str | None, offset: int, limit: int
    ) -> tuple[list[Chat], int]:
        """Chats in scope of groups, newest first; status active|queued|closed; member_id = only its chats."""

    @abstractmethod
    async def search_archives(
        self,
        license_id: int,
        groups: list[int],
        query: str | None,
        since_us: int,
        until_us: int,
        offset: int,
        limit: int,
    ) -> tuple[list[tuple[Chat, Thread]], int]:
        """Closed threads in scope whose events match query (full text), newest first."""

    # files
    @abstractmethod
    async def put_file(self, file: StoredFile) -> None: ...

    @abstractmethod
    async def get_file(self, token: str) -> StoredFile | None: ...

    # export
    @abstractmethod
    def export_chats(self, license_id: int, since_us: int) -> AsyncIterator[ChatExport]:
        """Every chat with activity at or after since_us, with threads and their events."""
