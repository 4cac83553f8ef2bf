"""Customer operations the seed lacks and later LiveChat versions have (SPEC §11), dialect-neutral.

They answer the seed's view shapes (views.py); a dialect renames and reshapes them. They live
apart from chats.py so that its hot paths stay as they are; every rule they need (access,
limits, routing, pushes) is ChatService's own.
"""

from __future__ import annotations

from typing import Any

from parley.protocol import limits
from parley.protocol import methods as m
from parley.protocol.errors import not_found, validation
from parley.service import views
from parley.service.chats import ChatService
from parley.service.context import Ctx
from parley.store.common import require_groups
from parley.store.records import Chat, NewEvent, StoredEvent, Thread

_RESUMED = ("chat_resumed", "the customer resumed the chat")
MAX_LISTED_CHATS = 100
"""Chats a login lists (and counts threads of for the statistics): the newest ones."""


class Extras:
    def __init__(self, chats: ChatService) -> None:
        self.chats = chats
        self.store = chats.store
        self.bus = chats.bus

    # -- reading -----------------------------------------------------------------------

    async def chat_page(
        self, ctx: Ctx, offset: int, limit: int, newest_first: bool
    ) -> tuple[list[tuple[Chat, Thread | None, list[StoredEvent]]], int]:
        """The customer's chats, each with its newest thread and that thread's visible events."""
        if newest_first:
            chats, total = await self.store.list_customer_chats(ctx.license_id, ctx.user_id, offset, limit)
        else:
            # The store lists newest first; an oldest-first page is the mirror image of one.
            _, total = await self.store.list_customer_chats(ctx.license_id, ctx.user_id, 0, 1)
            start = max(total - offset - limit, 0)
            count = max(min(limit, total - offset), 0)
            chats, total = await self.store.list_customer_chats(ctx.license_id, ctx.user_id, start, count)
            chats.reverse()
        out = []
        for chat in chats:
            newest, _ = await self.store.list_threads(ctx.license_id, chat.id, 0, 1, newest_first=True)
            events: list[StoredEvent] = []
            if newest:
                stored = (await self.store.thread_events(ctx.license_id, [newest[0].id]))[newest[0].id]
                events = [e for e in stored if views.visible(e, ctx.side)]
            out.append((chat, newest[0] if newest else None, events))
        return out, total

    async def thread_page(
        self, ctx: Ctx, chat_id: str, offset: int, limit: int, newest_first: bool, min_events: int | None
    ) -> tuple[Chat, list[dict[str, Any]], int]:
        """A page of a chat's threads with their events; with min_events the page grows (up to 100
        threads) until its threads hold that many visible events."""
        chat = await self.chats.chat_for(ctx, chat_id)
        wanted = max(limit, 100) if min_events else limit
        threads, total = await self.store.list_threads(ctx.license_id, chat.id, offset, wanted, newest_first)
        if min_events:
            taken, seen = [], 0
            for t in threads:
                if len(taken) >= limit and seen >= min_events:
                    break
                taken.append(t)
                seen += t.visible_count(ctx.side)
            threads = taken
        return chat, await self.chats.threads_view(ctx, threads), total

    async def chat_thread(self, ctx: Ctx, chat_id: str, thread_id: str | None) -> dict[str, Any]:
        """The chat with one thread (the newest unless thread_id), and its neighbours' ids."""
        chat = await self.chats.chat_for(ctx, chat_id)
        threads, _ = await self.store.list_threads(ctx.license_id, chat.id, 0, max(chat.threads_count, 1), False)
        ids = [t.id for t in threads]
        if thread_id is None:
            index = len(ids) - 1
        elif thread_id in ids:
            index = ids.index(thread_id)
        else:
            raise not_found(f"thread {thread_id}")
        view = views.chat_head(chat, await self.chats.users(ctx, chat))
        [view["thread"]] = await self.chats.threads_view(ctx, [threads[index]])
        if index > 0:
            view["thread"]["previous_thread_id"] = ids[index - 1]
        if index + 1 < len(ids):
            view["thread"]["next_thread_id"] = ids[index + 1]
        return view

    async def has_unread(self, ctx: Ctx, chat: Chat, events: list[StoredEvent]) -> bool:
        """Whether someone else wrote in the chat's newest thread after the customer last looked."""
        theirs = [e for e in events if e.author_id != ctx.user_id]
        if not theirs:
            return False
        seen = (await self.store.chat_last_seen(ctx.license_id, chat.id)).get(ctx.user_id, 0)
        return theirs[-1].order // 1_000_000 > seen

    async def profile(self, ctx: Ctx) -> dict[str, Any]:
        """The customer (seed User view) plus the counters customer SDKs read (`statistics`)."""
        customer = await self.store.get_customer(ctx.license_id, ctx.user_id)
        if customer is None:
            raise not_found("customer")
        chats, total = await self.store.list_customer_chats(ctx.license_id, ctx.user_id, 0, MAX_LISTED_CHATS)
        view = views.customer(customer, self.bus.is_present(customer.id))
        view["statistics"] = {
            "chats_count": total,
            "threads_count": sum(c.threads_count for c in chats),
            "visits_count": 1,
            "page_views_count": 1 if customer.monitoring.get("page", {}).get("url") else 0,
            "greetings_shown_count": 0,
            "greetings_accepted_count": 0,
        }
        return view

    async def group_statuses(self, ctx: Ctx, group_ids: list[int] | None) -> dict[int, str]:
        """online: an agent of the group can take a chat now; online_for_queue: agents are there
        but all are busy (a chat would wait in the queue); offline: nobody. Unknown ids are left out."""
        known = await self.store.group_ids(ctx.license_id)
        wanted = sorted(known) if group_ids is None else [g for g in dict.fromkeys(group_ids) if g in known]
        agents = await self.store.list_agents(ctx.license_id)
        loads = await self.store.agent_loads(ctx.license_id)
        router = self.chats.router
        out: dict[int, str] = {}
        for group in wanted:
            probe = Chat("", ctx.license_id, "", 0, [group], {}, None)
            members = [a for a in agents if group in a.groups or group == 0]
            if any(router.can_take(ctx.license, a, probe, loads) for a in members):
                out[group] = "online"
            elif any(a.routing_status == "accepting_chats" and router.reachable(a.id) for a in members):
                out[group] = "online_for_queue"
            else:
                out[group] = "offline"
        return out

    # -- writing -----------------------------------------------------------------------

    async def resume_chat(self, ctx: Ctx, chat_id: str, req: m.StartChat) -> dict[str, Any]:
        """Open a new thread in an inactive chat (LiveChat's resume_chat, formerly activate_chat):
        the given events (or a system message when there are none), properties and scopes, routed
        like a new chat. An active chat → `validation`; the 10-active-chats limit applies."""
        chats = self.chats
        chat = await chats.chat_for(ctx, chat_id)
        if chat.active_thread_id is not None:
            raise validation("the chat is already active (resume_chat needs an inactive chat)")
        if req.chat.scopes is not None:
            require_groups(req.chat.scopes.groups, await self.store.group_ids(ctx.license_id))
        events = [await chats.new_event(ctx, e, f"chat.thread.events[{i}]") for i, e in enumerate(req.initial_events())]
        customs = [e.custom_id for e in events if e.custom_id is not None]
        if len(customs) != len(set(customs)):
            raise validation("`chat.thread.events` repeat a `custom_id`")
        if not events:
            kind, text = _RESUMED
            events = [NewEvent("system_message", None, {"text": text, "system_message_type": kind})]
        check = chats.access_check(ctx)

        def inactive(c: Chat) -> None:
            check(c)
            if c.active_thread_id is not None:
                raise validation("the chat is already active (resume_chat needs an inactive chat)")

        # The first event opens the thread in the store's one atomic step (limit and all); the
        # rest follow into that thread.
        first = await self.store.append_event(
            ctx.license_id, chat.id, events[0], inactive, limits.ACTIVE_CHATS_PER_CUSTOMER
        )
        stored = [first.event]
        for new in events[1:]:
            more = await self.store.append_event(
                ctx.license_id, chat.id, new, check, limits.ACTIVE_CHATS_PER_CUSTOMER
            )
            stored.append(more.event)
        chats.on_events_stored(len(stored))
        thread_props = req.chat.thread.properties if req.chat.thread else None
        if req.chat.properties:
            await self.store.update_chat_properties(ctx.license_id, chat.id, req.chat.properties, check)
        if thread_props:
            await self.store.update_thread_properties(ctx.license_id, chat.id, first.thread.id, thread_props, check)
        if req.chat.scopes is not None:
            groups = req.chat.scopes.groups
            old = set(first.chat.scopes)
            add, remove = sorted(set(groups) - old), sorted(old - set(groups))
            if add or remove:
                await self.store.update_chat_scopes(ctx.license_id, chat.id, add, remove, check)
        view = await chats.current_view(ctx, chat.id)
        chats.announce(ctx, [chat.customer_id], "incoming_chat_thread", {"chat": view}, news=False)
        await chats.router.route(ctx)
        return {"chat": await chats.current_view(ctx, chat.id)}
