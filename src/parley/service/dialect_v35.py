"""The customer methods of the LiveChat-SDK dialect (SPEC §11), on the one service.

Each handler turns a v3.5 request into the seed's typed request (protocol/v35.py), runs the
seed's service method (ChatService, CustomerService) or a dialect-neutral addition (Extras), and
answers in v3.5 shapes. The push its request caused goes to the requesting connection too,
first after the answer (`v35.echo`; the connection stamps it with the request_id): the SDKs
resolve start_chat, resume_chat and send_event from that push, not from the response.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from parley.ids import rfc3339_us
from parley.protocol import methods as m
from parley.protocol import v35
from parley.protocol.errors import ApiError, ErrorType
from parley.service import views
from parley.service.chats import ChatService
from parley.service.context import Ctx
from parley.service.customers import CustomerService
from parley.service.dispatch import Method, ping
from parley.service.extras import MAX_LISTED_CHATS, Extras


def _echo(ctx: Ctx, *pushes: tuple[str, dict[str, Any]]) -> None:
    # Ahead of the news pushes the service queued (routing's user_added_to_chat, …): the push
    # that repeats the request comes first, as it would have had the request caused nothing else.
    ctx.after[:0] = [v35.echo(action, payload) for action, payload in pushes]


def _changed(before: dict[str, Any], update: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The names of a property update that really change (null = deleted), as the service decides."""
    out: dict[str, dict[str, Any]] = {}
    for ns, values in update.items():
        current = before.get(ns, {})
        for name, value in values.items():
            if value is None:
                if name in current:
                    out.setdefault(ns, {})[name] = None
            elif name not in current or orjson.dumps(current[name]) != orjson.dumps(value):
                out.setdefault(ns, {})[name] = value
    return out


def _own_part(ctx: Ctx, view: dict[str, Any]) -> dict[str, Any]:
    """The new chat as the requester made it: routing's news (the agent, its system message)
    follows in pushes of its own, so the echo does not carry it twice."""
    thread = view["thread"]
    own_thread = {
        **thread,
        "user_ids": [u for u in thread["user_ids"] if u == ctx.user_id],
        "events": [e for e in thread["events"] if e["author_id"] == ctx.user_id],
    }
    return {**view, "users": [u for u in view["users"] if u["id"] == ctx.user_id], "thread": own_thread}


class CustomerV35:
    def __init__(self, chats: ChatService, customers: CustomerService) -> None:
        self.chats = chats
        self.customers = customers
        self.extras = Extras(chats)
        self.store = chats.store

    # -- session -----------------------------------------------------------------------

    async def login(self, ctx: Ctx, req: v35.Login) -> dict[str, Any]:
        if req.customer is not None or req.customer_page is not None or req.referrer is not None:
            seed = v35.seed_customer(req.customer or v35.CustomerIn(), req.customer_page, req.referrer)
            changes = msgspec.to_builtins(seed.customer)
            if changes:
                await self.store.update_customer(ctx.license_id, ctx.user_id, changes)
        page, _ = await self.extras.chat_page(ctx, 0, MAX_LISTED_CHATS, newest_first=True)
        chats = [
            {
                "chat_id": chat.id,
                "has_active_thread": chat.active_thread_id is not None,
                "has_unread_events": await self.extras.has_unread(ctx, chat, events),
            }
            for chat, _thread, events in page
        ]
        return {
            "customer_id": ctx.user_id,
            "customer": await self.get_customer(ctx, v35.Empty()),
            "has_active_thread": any(c["has_active_thread"] for c in chats),
            "chats": chats,
            # customer-sdk needs an object here; without `online_groups_ids` it asks nothing more.
            "__priv_dynamic_config": {
                "customer_data": {},
                "organization_id": ctx.license.organization_id,
                "license_id": ctx.license_id,
            },
        }

    async def get_customer(self, ctx: Ctx, req: v35.Empty) -> dict[str, Any]:
        profile = await self.extras.profile(ctx)
        return {**v35.customer(profile), "statistics": profile["statistics"]}

    async def update_customer(self, ctx: Ctx, req: v35.UpdateCustomer) -> dict[str, Any]:
        answer = await self.customers.update_customer(ctx, v35.seed_customer(req))
        given = {k for k in ("name", "email", "session_fields") if getattr(req, k) is not None}
        view = v35.customer(answer["customer"])
        _echo(ctx, ("customer_updated", {"id": ctx.user_id, **{k: view[k] for k in sorted(given)}}))
        return {}

    async def set_customer_session_fields(self, ctx: Ctx, req: v35.SetCustomerSessionFields) -> dict[str, Any]:
        return await self.update_customer(ctx, v35.UpdateCustomer(session_fields=req.session_fields))

    async def update_customer_page(self, ctx: Ctx, req: v35.UpdateCustomerPage) -> dict[str, Any]:
        page = v35.CustomerPage(url=req.url, title=req.title)
        await self.customers.update_customer(ctx, v35.seed_customer(v35.CustomerIn(), page))
        _echo(ctx, ("customer_page_updated", {"url": req.url, "title": req.title or ""}))
        return {}

    # -- chats -------------------------------------------------------------------------

    async def list_chats(self, ctx: Ctx, req: v35.ListChats) -> dict[str, Any]:
        if req.page_id is not None:
            offset, limit, order = v35.read_page_id(req.page_id)
        else:
            offset, limit, order = 0, req.limit, req.sort_order
        page, total = await self.extras.chat_page(ctx, offset, limit, newest_first=order == "desc")
        items = []
        for chat, thread, events in page:
            item: dict[str, Any] = {
                "id": chat.id,
                "users": [v35.user(u) for u in await self.chats.users(ctx, chat)],
                "access": {"group_ids": chat.scopes},
                "properties": chat.properties,
                "active": chat.active_thread_id is not None,
            }
            if thread is not None:
                created = rfc3339_us(thread.order)
                item["last_thread_id"] = thread.id
                item["last_thread_created_at"] = created
                last: dict[str, Any] = {}
                for e in events:
                    last[e.type] = {"thread_id": thread.id, "thread_created_at": created, "event": stored_event(e)}
                if last:
                    item["last_event_per_type"] = last
            items.append(item)
        return {"chats_summary": items, "total_chats": total, **v35.pages(offset, len(items), limit, order, total)}

    async def list_threads(self, ctx: Ctx, req: v35.ListThreads) -> dict[str, Any]:
        if req.page_id is not None:
            offset, limit, order = v35.read_page_id(req.page_id)
        else:
            offset, limit, order = 0, req.limit, req.sort_order
        chat, threads, total = await self.extras.thread_page(
            ctx, req.chat_id, offset, limit, order == "desc", req.min_events_count
        )
        access = {"group_ids": chat.scopes}
        return {
            "threads": [v35.thread(t, access) for t in threads],
            "found_threads": total,
            **v35.pages(offset, len(threads), limit, order, total),
        }

    async def get_chat(self, ctx: Ctx, req: v35.GetChat) -> dict[str, Any]:
        return v35.chat(await self.extras.chat_thread(ctx, req.chat_id, req.thread_id))

    async def start_chat(self, ctx: Ctx, req: v35.StartChat) -> dict[str, Any]:
        answer = await self.chats.start_chat(ctx, v35.seed_start_chat(req))
        return self._opened(ctx, answer["chat"], with_chat_id=True)

    async def resume_chat(self, ctx: Ctx, req: v35.ResumeChat) -> dict[str, Any]:
        answer = await self.extras.resume_chat(ctx, req.chat.id, v35.seed_start_chat(req))
        return self._opened(ctx, answer["chat"], with_chat_id=False)

    def _opened(self, ctx: Ctx, view: dict[str, Any], *, with_chat_id: bool) -> dict[str, Any]:
        _echo(ctx, ("incoming_chat", {"chat": v35.chat(_own_part(ctx, view))}))
        thread = view["thread"]
        out: dict[str, Any] = {"chat_id": view["id"]} if with_chat_id else {}
        out["thread_id"] = thread["id"]
        event_ids = [e["id"] for e in thread["events"] if e["author_id"] == ctx.user_id]
        if event_ids:
            out["event_ids"] = event_ids
        return out

    async def deactivate_chat(self, ctx: Ctx, req: v35.DeactivateChat) -> dict[str, Any]:
        chat = await self.chats.chat_for(ctx, req.id)
        if chat.active_thread_id is None:
            raise ApiError(ErrorType.CHAT_INACTIVE, "the chat has no active thread")
        await self.chats.close_thread(ctx, m.CloseThread(chat_id=chat.id, thread_id=chat.active_thread_id))
        closed = {"chat_id": chat.id, "thread_id": chat.active_thread_id, "user_id": ctx.user_id}
        _echo(ctx, ("chat_deactivated", closed))
        return {}

    # -- events ------------------------------------------------------------------------

    async def send_event(self, ctx: Ctx, req: v35.SendEvent) -> dict[str, Any]:
        seed = v35.seed_send_event(req)
        if req.attach_to_last_thread:
            chat = await self.chats.chat_for(ctx, req.chat_id)
            if chat.active_thread_id is None:
                # parley writes into active threads only; without the flag the event reopens the chat.
                raise ApiError(ErrorType.CHAT_INACTIVE, "`attach_to_last_thread`: the chat has no active thread")
        answer = await self.chats.send_event(ctx, seed)
        payload = {"chat_id": req.chat_id, "thread_id": answer["thread_id"], "event": v35.event(answer["event"])}
        _echo(ctx, ("incoming_event", payload))
        return {"event_id": answer["event"]["id"]}

    async def send_sneak_peek(self, ctx: Ctx, req: v35.SendSneakPeek) -> dict[str, Any]:
        return await self.chats.send_sneak_peek(ctx, m.SendSneakPeek(req.chat_id, req.sneak_peek_text))

    async def mark_events_as_seen(self, ctx: Ctx, req: v35.MarkEventsAsSeen) -> dict[str, Any]:
        seconds = v35.seen_up_to_seconds(req.seen_up_to)
        chat = await self.chats.chat_for(ctx, req.chat_id)
        seed = m.UpdateLastSeenTimestamp(timestamp=seconds, chat_id=chat.id)
        answer = await self.chats.update_last_seen_timestamp(ctx, seed)
        seen = {"user_id": ctx.user_id, "chat_id": chat.id, "seen_up_to": v35.seconds_rfc3339(answer["timestamp"])}
        _echo(ctx, ("events_marked_as_seen", seen))
        return {}

    # -- properties --------------------------------------------------------------------

    async def _chat_properties(self, ctx: Ctx, chat_id: str, update: dict[str, Any]) -> dict[str, Any]:
        seed = m.decode(m.UpdateChatProperties, {"chat_id": chat_id, "properties": update})
        before = await self.chats.chat_for(ctx, chat_id)
        await self.chats.update_chat_properties(ctx, seed)
        changed = _changed(before.properties, update)
        if changed:
            _echo(ctx, *v35.translate("chat_properties_updated", {"chat_id": chat_id, "properties": changed}))
        return {}

    async def _thread_properties(self, ctx: Ctx, chat_id: str, thread_id: str, update: dict[str, Any]) -> dict:
        payload = {"chat_id": chat_id, "thread_id": thread_id, "properties": update}
        seed = m.decode(m.UpdateChatThreadProperties, payload)
        chat = await self.chats.chat_for(ctx, chat_id)
        found = await self.store.get_threads(ctx.license_id, chat.id, [thread_id])
        await self.chats.update_chat_thread_properties(ctx, seed)
        changed = _changed(found[0].properties if found else {}, update)
        if changed:
            _echo(ctx, *v35.translate("chat_thread_properties_updated", {**payload, "properties": changed}))
        return {}

    async def update_chat_properties(self, ctx: Ctx, req: v35.UpdateChatProperties) -> dict[str, Any]:
        return await self._chat_properties(ctx, req.id, req.properties)

    async def delete_chat_properties(self, ctx: Ctx, req: v35.DeleteChatProperties) -> dict[str, Any]:
        return await self._chat_properties(ctx, req.id, v35.deleted_names(req.properties))

    async def update_thread_properties(self, ctx: Ctx, req: v35.UpdateThreadProperties) -> dict[str, Any]:
        return await self._thread_properties(ctx, req.chat_id, req.thread_id, req.properties)

    async def delete_thread_properties(self, ctx: Ctx, req: v35.DeleteThreadProperties) -> dict[str, Any]:
        return await self._thread_properties(ctx, req.chat_id, req.thread_id, v35.deleted_names(req.properties))

    # -- groups ------------------------------------------------------------------------

    async def list_group_statuses(self, ctx: Ctx, req: v35.ListGroupStatuses) -> dict[str, Any]:
        wanted = None if req.all or req.group_ids is None else req.group_ids
        statuses = await self.extras.group_statuses(ctx, wanted)
        return {"groups_status": {str(g): s for g, s in statuses.items()}}


def methods(handlers: CustomerV35) -> dict[str, Method]:
    h = handlers
    return {
        "login": Method(v35.Login, h.login, web=False),
        "ping": Method(v35.Empty, ping, web=False),
        "list_chats": Method(v35.ListChats, h.list_chats),
        "list_threads": Method(v35.ListThreads, h.list_threads),
        "get_chat": Method(v35.GetChat, h.get_chat),
        "start_chat": Method(v35.StartChat, h.start_chat),
        "resume_chat": Method(v35.ResumeChat, h.resume_chat),
        "deactivate_chat": Method(v35.DeactivateChat, h.deactivate_chat),
        "send_event": Method(v35.SendEvent, h.send_event),
        "send_sneak_peek": Method(v35.SendSneakPeek, h.send_sneak_peek),
        "update_customer": Method(v35.UpdateCustomer, h.update_customer),
        "update_customer_page": Method(v35.UpdateCustomerPage, h.update_customer_page, web=False),
        "set_customer_session_fields": Method(v35.SetCustomerSessionFields, h.set_customer_session_fields),
        "get_customer": Method(v35.Empty, h.get_customer),
        "update_chat_properties": Method(v35.UpdateChatProperties, h.update_chat_properties),
        "delete_chat_properties": Method(v35.DeleteChatProperties, h.delete_chat_properties),
        "update_thread_properties": Method(v35.UpdateThreadProperties, h.update_thread_properties),
        "delete_thread_properties": Method(v35.DeleteThreadProperties, h.delete_thread_properties),
        "mark_events_as_seen": Method(v35.MarkEventsAsSeen, h.mark_events_as_seen),
        "list_group_statuses": Method(v35.ListGroupStatuses, h.list_group_statuses),
        # Web API only, multipart; the transport parses the body and calls the service itself.
        "upload_file": Method(v35.Empty, ping, rtm=False),
    }


def stored_event(e: Any) -> dict[str, Any]:
    return v35.event(views.event(e))
