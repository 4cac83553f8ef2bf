"""One running parley process: the store, the bus and the services wired together."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from parley.bus.base import Bus
from parley.bus.local import LocalBus
from parley.config import Settings
from parley.protocol import methods as m
from parley.protocol.errors import ApiError, ErrorType
from parley.protocol.v35 import Login as V35Login
from parley.service.accounts import Accounts
from parley.service.agents import AgentService
from parley.service.chats import ChatService
from parley.service.context import Ctx
from parley.service.customers import CustomerService
from parley.service.dialect_v35 import CustomerV35
from parley.service.dialect_v35 import methods as v35_methods
from parley.service.dispatch import Method, agent_methods, customer_methods
from parley.service.tokens import Tokens
from parley.store.base import Store
from parley.store.factory import open_store
from parley.store.records import License

LICENSE_TTL_S = 5.0
"""How long a cached licence is trusted: `parley admin` on another process (or a node of the
cluster) may change it, and SPEC §12 wants such changes to reach running nodes within 5 s."""


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
        self.store = store or open_store(settings.data_dir, settings.database_url, serving=True)
        self.bus = bus or self._bus(settings, self.store)
        self.chats = ChatService(self.store, self.bus)
        self.accounts = Accounts(self.store)
        self.tokens: Tokens | None = None
        self.customers: CustomerService | None = None
        self.agents: AgentService | None = None
        self.sides: dict[str, Side] = {}
        self.v35_sides: dict[str, Side] = {}
        """The LiveChat-SDK dialect (SPEC §11): its customer side, on the same services."""
        self._licenses: dict[int, tuple[License, float]] = {}

    @staticmethod
    def _bus(settings: Settings, store: Store) -> Bus:
        if not settings.broker_url:
            return LocalBus()
        if not (settings.database_url or "").startswith(("postgres://", "postgresql://")):
            # Nodes with a database each would hand out tokens, chats and queues nobody else sees.
            raise SystemExit(
                "parley: --broker-url needs --database-url postgresql://…: a cluster's nodes must share one database"
            )
        if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
            raise SystemExit(f"parley: unsupported --broker-url {settings.broker_url!r} (redis://… expected)")
        try:
            from parley.bus.redis import RedisBus  # imported here so a single node needs no redis package
        except ImportError as exc:
            raise SystemExit(f"parley: a redis:// --broker-url needs the redis package: {exc}") from None
        # Built now, started in start(): it reads the cluster id from the database once it is open.
        return RedisBus(settings.broker_url, store)

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
        v35 = CustomerV35(self.chats, customers)
        self.v35_sides["customer"] = Side(
            "customer",
            V35Login,
            customer_auth,
            v35.login,
            v35_methods(v35),
            "customer_disconnected",
            on_gone=self.chats.user_gone,
        )
        await self.bus.start()

    async def stop(self) -> None:
        await self.bus.stop()
        await self.store.close()

    async def license(self, license_id: int) -> License:
        """The licence, or `license_not_found`; cached for LICENSE_TTL_S (licences are never
        deleted, but their settings may change under another process)."""
        now = time.monotonic()
        cached = self._licenses.get(license_id)
        if cached is not None and now - cached[1] < LICENSE_TTL_S:
            return cached[0]
        found = await self.store.get_license(license_id)
        if found is None:
            raise ApiError(ErrorType.LICENSE_NOT_FOUND, f"licence {license_id} does not exist")
        if cached is not None:
            # Refresh the one object in place: open connections hold it, so they see new settings too.
            held = cached[0]
            held.name, held.organization_id, held.settings = found.name, found.organization_id, found.settings
            found = held
        self._licenses[license_id] = (found, now)
        return found
