"""One running parley process: the store, the bus and the services wired together."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from parley.bus.base import Bus
from parley.bus.local import LocalBus
from parley.config import Settings
from parley.protocol import methods as m
from parley.protocol.errors import ApiError, ErrorType
from parley.service.accounts import Accounts
from parley.service.agents import AgentService
from parley.service.chats import ChatService
from parley.service.context import Ctx
from parley.service.customers import CustomerService
from parley.service.dispatch import Method, agent_methods, customer_methods
from parley.service.tokens import Tokens
from parley.store.base import Store
from parley.store.factory import open_store
from parley.store.records import License


@dataclass(slots=True)
class Identity:
    user_id: str
    groups: list[int] = field(default_factory=list)


async def _nothing(ctx: Ctx) -> None:
    return None


@dataclass(slots=True)
class Side:
    """What differs between the customer and the agent side; everything else is shared."""

    name: str
    login_kind: type
    authenticate: Callable[[License, str], Awaitable[Identity]]
    """Token -> who, or ApiError (authentication, customer_banned)."""
    login: Callable[[Ctx, Any], Awaitable[dict[str, Any]]]
    methods: dict[str, Method]
    disconnected_push: str
    on_login: Callable[[Ctx], Awaitable[None]] = _nothing
    on_gone: Callable[[License, str], Awaitable[None]] | None = None
    """The user's last connection closed."""


class Node:
    def __init__(self, settings: Settings, store: Store | None = None, bus: Bus | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.data_dir, settings.database_url)
        self.bus = bus or LocalBus()
        self.chats = ChatService(self.store, self.bus)
        self.accounts = Accounts(self.store)
        self.tokens: Tokens | None = None
        self.customers: CustomerService | None = None
        self.agents: AgentService | None = None
        self.sides: dict[str, Side] = {}
        self._licenses: dict[int, License] = {}

    async def start(self) -> None:
        await self.store.open()
        key = await self.store.meta("jwt_signing_key", lambda: secrets.token_hex(32))
        self.tokens = Tokens(key)
        self.accounts = Accounts(self.store, self.tokens)
        customers = self.customers = CustomerService(self.chats, self.tokens)
        agents = self.agents = AgentService(self.chats, self.tokens)

        async def customer_auth(license: License, token: str) -> Identity:
            return Identity((await customers.authenticate(license, token)).id)

        async def agent_auth(license: License, token: str) -> Identity:
            agent = await agents.authenticate(license, token)
            return Identity(agent.id, agent.groups)

        self.sides["customer"] = Side(
            "customer",
            m.Login,
            customer_auth,
            customers.login,
            customer_methods(self.chats, customers),
            "customer_disconnected",
        )
        self.sides["agent"] = Side(
            "agent",
            m.AgentLogin,
            agent_auth,
            agents.login,
            agent_methods(self.chats, agents),
            "agent_disconnected",
            on_login=agents.connected,
            on_gone=agents.disconnected,
        )
        self.sides["customer"].on_gone = self.chats.user_gone

    async def stop(self) -> None:
        await self.store.close()

    async def license(self, license_id: int) -> License:
        """The licence, or `license_not_found`; cached, since licences are never deleted."""
        found = self._licenses.get(license_id)
        if found is None:
            found = await self.store.get_license(license_id)
            if found is None:
                raise ApiError(ErrorType.LICENSE_NOT_FOUND, f"licence {license_id} does not exist")
            self._licenses[license_id] = found
        return found
