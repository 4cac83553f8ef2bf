"""The agent side (SPEC §7): login, lists, archives, join/leave, transfer, typing, routing status, bans."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from parley.protocol import methods as m
from parley.protocol.errors import ApiError, ErrorType, not_found, validation
from parley.service import views
from parley.service.chats import ChatService
from parley.service.context import Ctx
from parley.service.tokens import Tokens
from parley.store.records import Agent, License

_DAY_US = 86_400 * 1_000_000


class AgentService:
    def __init__(self, chats: ChatService, tokens: Tokens) -> None:
        self.chats = chats
        self.store = chats.store
        self.bus = chats.bus
        self.router = chats.router
        self.tokens = tokens

    async def authenticate(self, license: License, token: str) -> Agent:
        agent_id = self.tokens.verify(token, "agent", license.id)
        found = await self.store.get_agents(license.id, [agent_id])
        if not found:
            raise ApiError(ErrorType.AUTHENTICATION, "the token names an unknown agent")
        return found[0]

    async def agent(self, ctx: Ctx, agent_id: str) -> Agent:
        found = await self.store.get_agents(ctx.license_id, [agent_id])
        if not found:
            raise not_found(f"agent {agent_id}")
        return found[0]

    def profile(self, agent: Agent) -> dict[str, Any]:
        view = views.agent(agent, self.bus.is_present(agent.id), show_email=True)
        view["groups"] = agent.groups
        view["max_chats"] = agent.max_chats
        return view

    async def login(self, ctx: Ctx, req: m.AgentLogin) -> dict[str, Any]:
        me = await self.agent(ctx, ctx.user_id)
        mine, _ = await self.store.list_agent_chats(ctx.license_id, ctx.groups, "active", ctx.user_id, 0, 100)
        return {
            "license": {"id": ctx.license_id, "organization_id": ctx.license.organization_id},
            "my_profile": self.profile(me),
            "chats_summary": [await self.chats.chat_item(ctx, c) for c in mine],
        }

    async def connected(self, ctx: Ctx) -> None:
        """An agent's connection logged in: it may take waiting chats now."""
        self.router.agent_came(ctx.user_id)
        await self.router.route(ctx)

    async def disconnected(self, license: License, agent_id: str) -> None:
        self.router.agent_left(agent_id)
        await self.chats.user_gone(license, agent_id)

    async def get_chats_summary(self, ctx: Ctx, req: m.AgentGetChatsSummary) -> dict[str, Any]:
        page = req.pagination
        member = ctx.user_id if req.filters.mine else None
        chats, total = await self.store.list_agent_chats(
            ctx.license_id, ctx.groups, req.filters.status, member, (page.page - 1) * page.limit, page.limit
        )
        return {
            "chats_summary": [await self.chats.chat_item(ctx, c) for c in chats],
            "pagination": {"page": page.page, "limit": page.limit, "total": total},
        }

    async def get_archives(self, ctx: Ctx, req: m.GetArchives) -> dict[str, Any]:
        f, page = req.filters, req.pagination
        since = _day_us(f.date_from, "filters.date_from") if f.date_from else 0
        until = _day_us(f.date_to, "filters.date_to") + _DAY_US if f.date_to else 2**62
        found, total = await self.store.search_archives(
            ctx.license_id, ctx.groups, f.query, since, until, (page.page - 1) * page.limit, page.limit
        )
        chats = []
        for chat, thread in found:
            events = (await self.store.thread_events(ctx.license_id, [thread.id]))[thread.id]
            chats.append({"chat": await self.chats.chat_with_thread(ctx, chat, thread, events)})
        return {"chats": chats, "pagination": {"page": page.page, "limit": page.limit, "total": total}}

    async def add_user_to_chat(self, ctx: Ctx, req: m.ChatUser) -> dict[str, Any]:
        agent = await self.agent(ctx, req.user_id)
        chat = await self.chats.chat_for(ctx, req.chat_id)
        if chat.active_thread_id is None:
            raise ApiError(ErrorType.CHAT_INACTIVE, "the chat has no active thread")
        if agent.id in chat.agent_ids:
            raise validation(f"agent {agent.id} is already in the chat")
        if not set(agent.groups) & set(chat.scopes):
            raise ApiError(ErrorType.AUTHORIZATION, f"agent {agent.id} is not in any group of the chat's scopes")
        change = await self.store.change_members(
            ctx.license_id,
            chat.id,
            [*chat.agent_ids, agent.id],
            self.chats.access_check(ctx),
            system=("agent_joined", f"{agent.name} joined the chat"),
            thread_id=chat.active_thread_id,
        )
        await self.chats.members_changed(ctx, change)
        await self.router.route(ctx)  # a queued chat taken by hand moves the queue up
        return {}

    async def remove_user_from_chat(self, ctx: Ctx, req: m.ChatUser) -> dict[str, Any]:
        chat = await self.chats.chat_for(ctx, req.chat_id)
        if req.user_id not in chat.agent_ids:
            raise not_found(f"agent {req.user_id} in this chat")
        agent = await self.agent(ctx, req.user_id)
        change = await self.store.change_members(
            ctx.license_id,
            chat.id,
            [a for a in chat.agent_ids if a != agent.id],
            self.chats.access_check(ctx),
            system=("agent_left", f"{agent.name} left the chat") if chat.active_thread_id else None,
        )
        if chat.active_thread_id is not None:
            self.router.avoid(chat.active_thread_id, agent.id)
        await self.chats.members_changed(ctx, change)
        await self.router.route(ctx)
        return {}

    async def transfer_chat(self, ctx: Ctx, req: m.TransferChat) -> dict[str, Any]:
        chat = await self.chats.chat_for(ctx, req.chat_id)
        if chat.active_thread_id is None:
            raise ApiError(ErrorType.CHAT_INACTIVE, "only a chat with an active thread can be transferred")
        target = req.target
        loads = await self.store.agent_loads(ctx.license_id)
        if target.type == "agent":
            ids = [str(i) for i in target.ids]
            agents = await self.store.get_agents(ctx.license_id, ids)
            if len(agents) != len(set(ids)):
                raise not_found("agent")
            # Like LiveChat, a transfer may target an agent who is not accepting chats or is at its
            # limit; without `force` the agent must at least be there to answer.
            online = [a for a in agents if self.router.reachable(a.id)]
            if not req.force and not online:
                raise validation("no target agent is connected (use `force` to transfer anyway)")
            free = [a for a in online if self.router.can_take(ctx.license, a, chat, loads)]
            pick = (free or online or agents)[0]
            scopes = chat.scopes if set(pick.groups) & set(chat.scopes) else sorted(set(chat.scopes) | {0})
            members, text = [pick.id], f"the chat was transferred to {pick.name}"
        else:
            groups = [g for g in target.ids if isinstance(g, int)]
            if len(groups) != len(target.ids):
                raise validation("`target.ids` of a group transfer are group ids (integers)")
            known = await self.store.group_ids(ctx.license_id)
            missing = [g for g in groups if g not in known]
            if missing:
                raise ApiError(ErrorType.GROUP_NOT_FOUND, f"group {missing[0]} does not exist")
            scopes = sorted(set(groups))
            if not req.force:
                agents = await self.store.list_agents(ctx.license_id)
                probe = replace(chat, scopes=scopes)
                if not any(a.id != ctx.user_id and self.router.can_take(ctx.license, a, probe, loads) for a in agents):
                    raise validation("no agent of the target groups can take the chat now (use `force` to queue it)")
            members, text = [], f"the chat was transferred to group {', '.join(map(str, scopes))}"
        change = await self.store.change_members(
            ctx.license_id,
            chat.id,
            members,
            self.chats.access_check(ctx),
            scopes=scopes,
            system=("transfer", text),
            thread_id=chat.active_thread_id,
        )
        payload = {
            "chat_id": chat.id,
            "thread_id": chat.active_thread_id,
            "requester_id": ctx.user_id,
            "type": target.type,
            "ids": list(target.ids),
        }
        if target.type == "group":
            self.router.avoid(chat.active_thread_id, ctx.user_id)
        everyone = list(dict.fromkeys([*self.chats.everyone(change.chat), *change.removed]))
        self.chats.announce(ctx, everyone, "chat_transferred", payload, news=False)
        await self.chats.members_changed(ctx, change)
        await self.router.route(ctx)
        return {}

    async def send_typing_indicator(self, ctx: Ctx, req: m.SendTypingIndicator) -> dict[str, Any]:
        chat = await self.chats.chat_for(ctx, req.chat_id)
        if chat.active_thread_id is None:
            raise ApiError(ErrorType.CHAT_INACTIVE, "the chat has no active thread")
        to = chat.agent_ids if req.recipients == "agents" else self.chats.everyone(chat)
        payload = {
            "chat_id": chat.id,
            "thread_id": chat.active_thread_id,
            "typing_indicator": {"author_id": ctx.user_id, "is_typing": req.is_typing, "timestamp": int(time.time())},
        }
        self.chats.announce(ctx, [u for u in to if u != ctx.user_id], "incoming_typing_indicator", payload, news=False)
        return {}

    async def set_routing_status(self, ctx: Ctx, req: m.SetRoutingStatus) -> dict[str, Any]:
        agent = await self.agent(ctx, req.agent_id or ctx.user_id)
        await self.store.set_routing_status(ctx.license_id, agent.id, req.status)
        self.chats.announce(
            ctx, [agent.id], "routing_status_set", {"agent_id": agent.id, "status": req.status}, news=False
        )
        if req.status == "accepting_chats":
            await self.router.route(ctx)
        return {}

    async def ban_customer(self, ctx: Ctx, req: m.BanCustomer) -> dict[str, Any]:
        until = int(time.time()) + req.ban.days * 86_400
        await self.store.ban_customer(ctx.license_id, req.customer_id, until)
        self.chats.kick_customer(req.customer_id, "customer_banned")
        return {}


def _day_us(day: str, field: str) -> int:
    try:
        parsed = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise validation(f"`{field}` is not a real date (YYYY-MM-DD)") from None
    return int(parsed.timestamp()) * 1_000_000
