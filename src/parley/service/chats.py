"""The rules of chats, threads, events, properties and scopes (SPEC §4 to §6), transport-free.

Each method takes the requester (Ctx) and a decoded request, does its work through the Store,
announces it through the Bus and answers the response payload. Pushes follow SPEC §2: every
connection of every recipient, except the requesting connection when the push only repeats
its own answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import msgspec

from parley.bus.base import Bus
from parley.protocol import limits
from parley.protocol import methods as m
from parley.protocol.envelope import push
from parley.protocol.errors import ApiError, ErrorType, not_found, too_large, validation
from parley.protocol.objects import Event, FileIn, SystemMessageIn
from parley.service import views
from parley.service.context import Ctx
from parley.service.ratelimit import KeyedBuckets
from parley.service.routing import Router
from parley.store.base import ChatCheck, Store
from parley.store.records import Chat, License, MembersChange, NewEvent, StoredEvent, Thread


class ChatService:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self.router = Router(self)
        self.on_events_stored: Callable[[int], object] = lambda n: None
        self._sneak_peeks = KeyedBuckets(limits.SNEAK_PEEKS_PER_SECOND, limits.SNEAK_PEEKS_PER_SECOND)

    # -- access ------------------------------------------------------------------------

    def access_check(self, ctx: Ctx) -> ChatCheck:
        """A customer may use only its own chats, an agent only chats in its groups' scopes;
        anything else looks like it does not exist."""

        def check(chat: Chat) -> None:
            if ctx.side == "customer":
                if chat.customer_id != ctx.user_id:
                    raise not_found("chat")
            elif not set(chat.scopes) & set(ctx.groups):
                raise not_found("chat")

        return check

    async def chat_for(self, ctx: Ctx, chat_id: str) -> Chat:
        chat = await self.store.get_chat(ctx.license_id, chat_id)
        if chat is None:
            raise not_found("chat")
        self.access_check(ctx)(chat)
        return chat

    # -- recipients and pushes ---------------------------------------------------------

    def announce(self, ctx: Ctx, user_ids: list[str], action: str, payload: dict[str, Any], *, news: bool) -> None:
        """Push to every connection of user_ids but the requester's. news=True: the push tells the
        requester more than its answer does, so its connection gets it too, after the answer."""
        frame = push(action, payload)
        self.bus.publish(user_ids, frame, exclude=ctx.conn_id, t0=ctx.t0)
        if news and ctx.conn_id is not None and ctx.user_id in user_ids:
            ctx.after.append(frame)

    def kick_customer(self, customer_id: str, reason: str) -> None:
        """Close every connection of the customer, telling it why (SPEC §6 customer_disconnected)."""
        self.bus.disconnect_user(customer_id, push("customer_disconnected", {"reason": reason}), _POLICY_VIOLATION)

    async def user_gone(self, license: License, user_id: str) -> None:
        """The user's last connection closed: it was last seen now."""
        await self.store.set_last_seen(license.id, user_id, None, int(time.time()))

    @staticmethod
    def everyone(chat: Chat) -> list[str]:
        return [chat.customer_id, *chat.agent_ids]

    # -- views -------------------------------------------------------------------------

    async def users(self, ctx: Ctx, chat: Chat) -> list[dict[str, Any]]:
        customers = await self.store.get_customers(ctx.license_id, [chat.customer_id])
        agents = await self.store.get_agents(ctx.license_id, chat.agent_ids)
        show_email = ctx.side == "agent" or bool(ctx.license.settings.get("public_agent_email"))
        return [
            *(views.customer(c, self.bus.is_present(c.id)) for c in customers),
            *(views.agent(a, self.bus.is_present(a.id), show_email=show_email) for a in agents),
        ]

    async def threads_view(self, ctx: Ctx, threads: list[Thread]) -> list[dict[str, Any]]:
        events = await self.store.thread_events(ctx.license_id, [t.id for t in threads])
        return [views.thread(t, events[t.id], ctx.side) for t in threads]

    async def chat_with_thread(self, ctx: Ctx, chat: Chat, thread: Thread, events: list[StoredEvent]) -> dict:
        view = views.chat_head(chat, await self.users(ctx, chat))
        view["thread"] = views.thread(thread, events, ctx.side)
        return view

    # -- summaries ---------------------------------------------------------------------

    async def chat_summary(self, ctx: Ctx, chat: Chat, threads_limit: int) -> dict[str, Any]:
        """login's `last_chats_summary` item (seed shape)."""
        newest, total = await self.store.list_threads(ctx.license_id, chat.id, 0, threads_limit, newest_first=True)
        view = views.chat_head(chat, await self.users(ctx, chat))
        if newest:
            events = (await self.store.thread_events(ctx.license_id, [newest[0].id]))[newest[0].id]
            per_type: dict[str, StoredEvent] = {}
            for e in events:
                if views.visible(e, ctx.side):
                    per_type[e.type] = e
            view["last_event_per_type"] = {
                "thread_id": newest[0].id,
                "events": [views.event(e) for e in sorted(per_type.values(), key=lambda e: e.order)],
            }
        view["last_threads_summary"] = [
            {"id": t.id, "order": t.order, "events_count": t.visible_count(ctx.side)} for t in reversed(newest)
        ]
        view["total_threads"] = total
        return view

    async def chat_item(self, ctx: Ctx, chat: Chat) -> dict[str, Any]:
        """get_chats_summary item: the chat with the last event of its newest thread."""
        view = views.chat_head(chat, await self.users(ctx, chat))
        newest, _ = await self.store.list_threads(ctx.license_id, chat.id, 0, 1, newest_first=True)
        if newest:
            events = (await self.store.thread_events(ctx.license_id, [newest[0].id]))[newest[0].id]
            seen = [e for e in events if views.visible(e, ctx.side)]
            if seen:
                view["last_event"] = {"thread_id": newest[0].id, "event": views.event(seen[-1])}
        return view

    async def get_chats_summary(self, ctx: Ctx, req: m.GetChatsSummary) -> dict[str, Any]:
        page = req.pagination
        chats, total = await self.store.list_customer_chats(
            ctx.license_id, ctx.user_id, (page.page - 1) * page.limit, page.limit
        )
        return {
            "chats_summary": [await self.chat_item(ctx, c) for c in chats],
            "pagination": {"page": page.page, "limit": page.limit, "total": total},
        }

    async def get_chat_threads(self, ctx: Ctx, req: m.GetChatThreads) -> dict[str, Any]:
        chat = await self.chat_for(ctx, req.chat_id)
        wanted = list(dict.fromkeys(req.thread_ids))
        threads = await self.store.get_threads(ctx.license_id, chat.id, wanted)
        if len(threads) != len(wanted):
            missing = sorted(set(wanted) - {t.id for t in threads})
            raise not_found(f"thread {missing[0]}")
        view = views.chat_head(chat, await self.users(ctx, chat))
        view["threads"] = await self.threads_view(ctx, threads)
        return {"chat": view}

    async def get_chat_threads_summary(self, ctx: Ctx, req: m.GetChatThreadsSummary) -> dict[str, Any]:
        chat = await self.chat_for(ctx, req.chat_id)
        page = req.pagination
        threads, total = await self.store.list_threads(
            ctx.license_id, chat.id, page.offset, page.limit, newest_first=False
        )
        return {
            "chat": {
                "id": chat.id,
                "threads_summary": [
                    {"thread_id": t.id, "id": t.id, "order": t.order, "events_count": t.visible_count(ctx.side)}
                    for t in threads
                ],
            },
            "pagination": {"offset": page.offset, "limit": page.limit, "total": total},
        }

    # -- events ------------------------------------------------------------------------

    async def new_event(self, ctx: Ctx, event: Event, field: str) -> NewEvent:
        """Check who may send what, resolve uploads, and shape the stored body."""
        if isinstance(event, SystemMessageIn):
            raise validation(f"`{field}.type` system_message is written by the server only")
        if event.recipients == "agents" and ctx.side == "customer":
            raise validation(f'`{field}.recipients` "agents" is for agents only')
        body: dict[str, Any] = msgspec.to_builtins(event)
        tag = body.pop("type")
        body.pop("custom_id", None)
        body.pop("recipients", None)
        if isinstance(event, FileIn):
            body.update(await self.resolve_file(ctx, event, field))
        return NewEvent(
            type=tag,
            author_id=ctx.user_id,
            body=body,
            recipients=event.recipients,
            custom_id=event.custom_id,
        )

    async def resolve_file(self, ctx: Ctx, event: FileIn, field: str) -> dict[str, Any]:
        path = urlsplit(event.url).path
        token = path.split("/files/", 1)[1].split("/", 1)[0] if "/files/" in path else ""
        stored = await self.store.get_file(token) if token else None
        if stored is None or stored.license_id != ctx.license_id:
            raise validation(f"`{field}.url` is not a file uploaded with upload_file to this licence")
        return {
            "url": event.url,
            "name": event.name or stored.name,
            "content_type": stored.content_type,
            "size": stored.size,
        }

    async def start_chat(self, ctx: Ctx, req: m.StartChat) -> dict[str, Any]:
        scopes = sorted(set(req.chat.scopes.groups)) if req.chat.scopes else [0]
        known = await self.store.group_ids(ctx.license_id)
        unknown = [g for g in scopes if g not in known]
        if unknown:
            raise ApiError(ErrorType.GROUP_NOT_FOUND, f"group {unknown[0]} does not exist")
        events = [await self.new_event(ctx, e, f"chat.thread.events[{i}]") for i, e in enumerate(req.initial_events())]
        customs = [e.custom_id for e in events if e.custom_id is not None]
        if len(customs) != len(set(customs)):
            raise validation("`chat.thread.events` repeat a `custom_id`")
        thread_props = (req.chat.thread.properties if req.chat.thread else None) or {}
        started = await self.store.start_chat(
            ctx.license_id,
            ctx.user_id,
            scopes,
            _drop_nulls(req.chat.properties or {}),
            _drop_nulls(thread_props),
            events,
            limits.ACTIVE_CHATS_PER_CUSTOMER,
        )
        self.on_events_stored(len(started.events))
        view = await self.chat_with_thread(ctx, started.chat, started.thread, started.events)
        self.announce(ctx, [started.chat.customer_id], "incoming_chat_thread", {"chat": view}, news=False)
        await self.router.route(ctx)
        return {"chat": await self.current_view(ctx, started.chat.id)}

    async def current_view(self, ctx: Ctx, chat_id: str) -> dict[str, Any]:
        """The chat with its active (else newest) thread, as it is now."""
        chat = await self.chat_for(ctx, chat_id)
        thread_id = chat.active_thread_id
        if thread_id is None:
            newest, _ = await self.store.list_threads(ctx.license_id, chat.id, 0, 1, newest_first=True)
            thread_id = newest[0].id
        [thread] = await self.store.get_threads(ctx.license_id, chat.id, [thread_id])
        events = (await self.store.thread_events(ctx.license_id, [thread.id]))[thread.id]
        return await self.chat_with_thread(ctx, chat, thread, events)

    async def send_event(self, ctx: Ctx, req: m.SendEvent) -> dict[str, Any]:
        new = await self.new_event(ctx, req.event, "event")
        check = self.access_check(ctx)
        if ctx.side == "agent":
            check = _and_active(check)
        done = await self.store.append_event(ctx.license_id, req.chat_id, new, check, limits.ACTIVE_CHATS_PER_CUSTOMER)
        answer = {"thread_id": done.thread.id, "event": views.event(done.event)}
        if done.duplicate:
            return answer
        self.on_events_stored(1)
        if done.opened_thread:
            view = await self.chat_with_thread(ctx, done.chat, done.thread, [done.event])
            self.announce(ctx, [done.chat.customer_id], "incoming_chat_thread", {"chat": view}, news=False)
            await self.router.route(ctx)
        else:
            to = done.chat.agent_ids if new.recipients == "agents" else self.everyone(done.chat)
            self.announce(ctx, to, "incoming_event", {"chat_id": done.chat.id, **answer}, news=False)
        return answer

    async def send_sneak_peek(self, ctx: Ctx, req: m.SendSneakPeek) -> dict[str, Any]:
        if len(req.sneak_peek_text) > limits.SNEAK_PEEK_MAX_CHARS:
            raise too_large("sneak_peek_text", f"{limits.SNEAK_PEEK_MAX_CHARS} characters")
        chat = await self.chat_for(ctx, req.chat_id)
        if chat.active_thread_id is None:
            raise ApiError(ErrorType.CHAT_INACTIVE, "the chat has no active thread")
        if self._sneak_peeks.take(chat.id):
            payload = {
                "chat_id": chat.id,
                "thread_id": chat.active_thread_id,
                "sneak_peek": {"author_id": ctx.user_id, "text": req.sneak_peek_text, "timestamp": int(time.time())},
            }
            self.announce(ctx, chat.agent_ids, "incoming_sneak_peek", payload, news=False)
        return {}

    async def close_thread(self, ctx: Ctx, req: m.CloseThread) -> dict[str, Any]:
        thread = await self.store.close_thread(ctx.license_id, req.chat_id, req.thread_id, self.access_check(ctx))
        chat = await self.chat_for(ctx, req.chat_id)
        payload = {"chat_id": chat.id, "thread_id": thread.id, "user_id": ctx.user_id}
        self.announce(ctx, self.everyone(chat), "thread_closed", payload, news=False)
        self.router.forget(thread.id)
        await self.router.route(ctx)
        return {}

    async def update_chat_scopes(self, ctx: Ctx, req: m.UpdateChatScopes) -> dict[str, Any]:
        add = req.add_scopes.groups if req.add_scopes else []
        remove = req.remove_scopes.groups if req.remove_scopes else []
        change = await self.store.update_chat_scopes(ctx.license_id, req.chat_id, add, remove, self.access_check(ctx))
        if change.added or change.removed:
            payload = {
                "chat_id": change.chat.id,
                "scopes_added": {"groups": change.added},
                "scopes_removed": {"groups": change.removed},
            }
            self.announce(ctx, self.everyone(change.chat), "chat_scopes_updated", payload, news=False)
            await self.reroute_out_of_scope(ctx, change.chat)
        return {}

    async def reroute_out_of_scope(self, ctx: Ctx, chat: Chat) -> None:
        """Agents whose groups no longer meet the chat's scopes leave it; then routing runs, which
        also serves a queued chat whose new scopes reach a free agent."""
        if chat.active_thread_id is not None and chat.agent_ids:
            agents = await self.store.get_agents(ctx.license_id, chat.agent_ids)
            keep = [a.id for a in agents if set(a.groups) & set(chat.scopes)]
            if len(keep) != len(chat.agent_ids):
                change = await self.store.change_members(
                    ctx.license_id,
                    chat.id,
                    keep,
                    lambda c: None,
                    system=("routing.unassigned", "the chat was re-routed"),
                )
                await self.members_changed(ctx, change)
        await self.router.route(ctx)

    async def members_changed(self, ctx: Ctx, change: MembersChange) -> None:
        """Tell everyone about agents who joined or left a chat (routing, join, leave, transfer)."""
        chat, thread = change.chat, change.thread
        thread_id = thread.id if thread else None
        stayed = [chat.customer_id, *(a for a in chat.agent_ids if a not in change.added)]
        for agent_id in change.removed:
            payload = {"chat_id": chat.id, "thread_id": thread_id, "user_id": agent_id, "user_type": "agent"}
            self.announce(ctx, [*stayed, agent_id], "chat_user_removed", payload, news=True)
        if change.added:
            added = await self.store.get_agents(ctx.license_id, change.added)
            show_email = bool(ctx.license.settings.get("public_agent_email"))
            for agent in added:
                user = views.agent(agent, self.bus.is_present(agent.id), show_email=show_email)
                payload = {"chat_id": chat.id, "thread_id": thread_id, "user": user, "user_type": "agent"}
                self.announce(ctx, stayed, "chat_user_added", payload, news=True)
            if thread is not None:
                events = (await self.store.thread_events(ctx.license_id, [thread.id]))[thread.id]
                agent_ctx = replace(ctx, side="agent")
                view = await self.chat_with_thread(agent_ctx, chat, thread, events)
                self.announce(ctx, change.added, "incoming_chat_thread", {"chat": view}, news=True)
        if change.event is not None:
            self.on_events_stored(1)
            payload = {"chat_id": chat.id, "thread_id": thread_id, "event": views.event(change.event)}
            self.announce(ctx, stayed, "incoming_event", payload, news=True)

    async def update_chat_properties(self, ctx: Ctx, req: m.UpdateChatProperties) -> dict[str, Any]:
        chat, changed = await self.store.update_chat_properties(
            ctx.license_id, req.chat_id, req.properties, self.access_check(ctx)
        )
        if changed:
            payload = {"chat_id": chat.id, "properties": changed}
            self.announce(ctx, self.everyone(chat), "chat_properties_updated", payload, news=False)
        return {}

    async def update_chat_thread_properties(self, ctx: Ctx, req: m.UpdateChatThreadProperties) -> dict[str, Any]:
        chat, changed = await self.store.update_thread_properties(
            ctx.license_id, req.chat_id, req.thread_id, req.properties, self.access_check(ctx)
        )
        if changed:
            payload = {"chat_id": chat.id, "thread_id": req.thread_id, "properties": changed}
            self.announce(ctx, self.everyone(chat), "chat_thread_properties_updated", payload, news=False)
        return {}

    async def update_last_seen_timestamp(self, ctx: Ctx, req: m.UpdateLastSeenTimestamp) -> dict[str, Any]:
        now = int(time.time())
        wanted = now if req.timestamp is None else req.timestamp
        if wanted > now + limits.LAST_SEEN_FUTURE_SLACK_S:
            raise validation("`timestamp` is in the future")
        wanted = min(wanted, now)
        if req.chat_id is not None:
            chats = [await self.chat_for(ctx, req.chat_id)]
        else:
            chats = await self.store.active_chats(ctx.license_id, ctx.user_id) if ctx.side == "customer" else []
        stored = await self.store.set_last_seen(ctx.license_id, ctx.user_id, req.chat_id, wanted)
        payload: dict[str, Any] = {"user_id": ctx.user_id, "timestamp": stored}
        for chat in chats:
            scoped = {**payload, "chat_id": chat.id} if req.chat_id is not None else payload
            others = [u for u in self.everyone(chat) if u != ctx.user_id]
            self.announce(ctx, others, "last_seen_timestamp_updated", scoped, news=False)
        return {"timestamp": stored}


_POLICY_VIOLATION = 1008


def _and_active(check: ChatCheck) -> ChatCheck:
    """Agents write only into an active thread; reopening a chat is the customer's move."""

    def both(chat: Chat) -> None:
        check(chat)
        if chat.active_thread_id is None:
            raise ApiError(ErrorType.CHAT_INACTIVE, "the chat has no active thread")

    return both


def _drop_nulls(props: dict[str, Any]) -> dict[str, Any]:
    """A new chat has nothing to delete: `null` names are simply not stored."""
    cleaned = {ns: {k: v for k, v in values.items() if v is not None} for ns, values in props.items()}
    return {ns: values for ns, values in cleaned.items() if values}
