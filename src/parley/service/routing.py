"""Routing (SPEC §7): assign waiting threads to agents, keep the per-licence FIFO queue.

Every decision runs under the licence's lock and reads the queue and the agents' loads from
the store, so the store stays the one source of truth (a restart loses no queued chat).

In a cluster that lock is per node: two nodes may route the same licence at once. The store
settles it: an assignment only succeeds while the thread has no agent (`only_if_unassigned`, in
the store's serialised write step), so a thread never goes to two agents; the loser skips it.
Presence is the cluster's (the bus), and the 30 s grace after an agent's last connection closes
starts on every node, whichever node that connection was on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from parley.bus.base import PresenceChange
from parley.protocol import limits
from parley.protocol.errors import ApiError
from parley.service.context import Ctx
from parley.store.records import Agent, Chat, License, Thread

# Rough wait per queue position, for `queue.wait_time` (seconds).
_WAIT_PER_POSITION_S = 60


class Router:
    def __init__(self, chats: Any) -> None:
        self.chats = chats
        self.store = chats.store
        self.bus = chats.bus
        self._locks: dict[int, asyncio.Lock] = {}
        self._last_assigned: dict[str, float] = {}
        self._gone_at: dict[str, float] = {}
        self._positions: dict[str, int] = {}
        self._avoid: dict[str, str] = {}
        self.bus.watch_presence(self._presence_changed)

    # -- presence of agents ------------------------------------------------------------

    def agent_left(self, agent_id: str) -> None:
        """The agent's last connection closed; new chats stop after the grace period."""
        self._gone_at[agent_id] = time.monotonic()

    def agent_came(self, agent_id: str) -> None:
        self._gone_at.pop(agent_id, None)

    def _presence_changed(self, user_id: str, side: str, change: PresenceChange) -> None:
        """Another node changed whether an agent is connected anywhere."""
        if side != "agent":
            return
        if change == "came":
            self.agent_came(user_id)
        elif change == "left":
            self.agent_left(user_id)
        else:
            # Its node died: SPEC §12 wants its agents out of routing within 30 s of that, and
            # the hash expiring already took most of it; no second grace period on top.
            self._gone_at.pop(user_id, None)

    def reachable(self, agent_id: str) -> bool:
        if self.bus.is_present(agent_id):
            return True
        gone = self._gone_at.get(agent_id)
        return gone is not None and time.monotonic() - gone < limits.AGENT_GONE_AFTER_S

    @staticmethod
    def capacity(license: License, agent: Agent) -> int:
        if agent.max_chats is not None:
            return agent.max_chats
        return int(license.settings.get("max_chats_per_agent", limits.DEFAULT_MAX_CHATS_PER_AGENT))

    def can_take(self, license: License, agent: Agent, chat: Chat, loads: dict[str, int]) -> bool:
        return (
            agent.routing_status == "accepting_chats"
            and self.reachable(agent.id)
            and bool(set(agent.groups) & set(chat.scopes))
            and loads.get(agent.id, 0) < self.capacity(license, agent)
        )

    # -- the queue ---------------------------------------------------------------------

    async def route(self, ctx: Ctx) -> None:
        """Give every waiting thread of the licence, oldest first, to the best free agent."""
        license = ctx.license
        lock = self._locks.setdefault(license.id, asyncio.Lock())
        async with lock:
            queued = await self.store.queued_threads(license.id)
            if not queued:
                return
            agents = await self.store.list_agents(license.id)
            loads = await self.store.agent_loads(license.id)
            waiting: list[tuple[Chat, Thread]] = []
            for chat, thread in queued:
                free = [a for a in agents if self.can_take(license, a, chat, loads)]
                avoid = self._avoid.get(thread.id)
                free = [a for a in free if a.id != avoid] or free
                if not free:
                    waiting.append((chat, thread))
                    continue
                pick = min(free, key=lambda a: (loads.get(a.id, 0), self._last_assigned.get(a.id, 0.0)))
                loads[pick.id] = loads.get(pick.id, 0) + 1
                self._last_assigned[pick.id] = time.monotonic()
                self.forget(thread.id)
                if not await self.assign(ctx, chat, thread, pick):
                    loads[pick.id] -= 1  # another node took or closed it: the agent's slot is still free
            for position, (chat, thread) in enumerate(waiting, start=1):
                if self._positions.get(thread.id) != position:
                    self._positions[thread.id] = position
                    payload = {
                        "chat_id": chat.id,
                        "thread_id": thread.id,
                        "queue": {"position": position, "wait_time": position * _WAIT_PER_POSITION_S},
                    }
                    self.chats.announce(ctx, [chat.customer_id], "queue_position_updated", payload, news=True)

    async def assign(self, ctx: Ctx, chat: Chat, thread: Thread, agent: Agent) -> bool:
        """Give the waiting thread to agent; False when it is no longer waiting."""
        try:
            change = await self.store.change_members(
                ctx.license_id,
                chat.id,
                [agent.id],
                lambda c: None,
                system=("routing.assigned", f"{agent.name} joined the chat"),
                thread_id=thread.id,
                only_if_unassigned=True,
            )
        except ApiError:
            return False  # closed meanwhile, or another node (or agent) took it first
        await self.chats.members_changed(ctx, change)
        return True

    def avoid(self, thread_id: str, agent_id: str) -> None:
        """Route this thread to anyone but agent_id if anyone else can take it (a transfer away)."""
        self._avoid[thread_id] = agent_id

    def forget(self, thread_id: str) -> None:
        self._positions.pop(thread_id, None)
        self._avoid.pop(thread_id, None)
