"""Which action runs which service method with which typed request, per side."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from parley.protocol import methods as m
from parley.protocol.errors import validation
from parley.service.agents import AgentService
from parley.service.chats import ChatService
from parley.service.context import Ctx
from parley.service.customers import CustomerService

Handler = Callable[[Ctx, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Method:
    kind: type
    handler: Handler
    rtm: bool = True
    web: bool = True


async def ping(ctx: Ctx, req: Any) -> dict[str, Any]:
    """`ping`: nothing to do but answer (also the placeholder of `upload_file`, whose body the
    Web API transport parses and handles itself)."""
    return {}


def customer_methods(chats: ChatService, customers: CustomerService) -> dict[str, Method]:
    return {
        "login": Method(m.Login, customers.login, web=False),
        "ping": Method(m.Empty, ping, web=False),
        "get_chats_summary": Method(m.GetChatsSummary, chats.get_chats_summary),
        "get_chat_threads": Method(m.GetChatThreads, chats.get_chat_threads),
        "get_chat_threads_summary": Method(m.GetChatThreadsSummary, chats.get_chat_threads_summary),
        "start_chat": Method(m.StartChat, chats.start_chat),
        "send_event": Method(m.SendEvent, chats.send_event),
        "send_sneak_peek": Method(m.SendSneakPeek, chats.send_sneak_peek),
        "close_thread": Method(m.CloseThread, chats.close_thread),
        "update_chat_scopes": Method(m.UpdateChatScopes, chats.update_chat_scopes),
        "update_customer": Method(m.UpdateCustomer, customers.update_customer),
        "update_chat_properties": Method(m.UpdateChatProperties, chats.update_chat_properties),
        "update_chat_thread_properties": Method(m.UpdateChatThreadProperties, chats.update_chat_thread_properties),
        "update_last_seen_timestamp": Method(m.UpdateLastSeenTimestamp, chats.update_last_seen_timestamp),
        # Web API only, multipart; the transport parses the body and calls the service itself.
        "upload_file": Method(m.Empty, ping, rtm=False),
    }


def agent_methods(chats: ChatService, agents: AgentService) -> dict[str, Method]:
    return {
        "login": Method(m.AgentLogin, agents.login, web=False),
        "ping": Method(m.Empty, ping, web=False),
        "get_chats_summary": Method(m.AgentGetChatsSummary, agents.get_chats_summary),
        "get_archives": Method(m.GetArchives, agents.get_archives),
        "get_chat_threads": Method(m.GetChatThreads, chats.get_chat_threads),
        "get_chat_threads_summary": Method(m.GetChatThreadsSummary, chats.get_chat_threads_summary),
        "add_user_to_chat": Method(m.ChatUser, agents.add_user_to_chat),
        "remove_user_from_chat": Method(m.ChatUser, agents.remove_user_from_chat),
        "transfer_chat": Method(m.TransferChat, agents.transfer_chat),
        "send_event": Method(m.SendEvent, chats.send_event),
        "send_typing_indicator": Method(m.SendTypingIndicator, agents.send_typing_indicator),
        "close_thread": Method(m.CloseThread, chats.close_thread),
        "update_chat_properties": Method(m.UpdateChatProperties, chats.update_chat_properties),
        "update_chat_thread_properties": Method(m.UpdateChatThreadProperties, chats.update_chat_thread_properties),
        "update_last_seen_timestamp": Method(m.UpdateLastSeenTimestamp, chats.update_last_seen_timestamp),
        "set_routing_status": Method(m.SetRoutingStatus, agents.set_routing_status),
        "ban_customer": Method(m.BanCustomer, agents.ban_customer),
    }


def lookup(table: dict[str, Method], action: str, transport: str) -> Method:
    method = table.get(action)
    if method is None:
        raise validation(f"unknown action `{action}`")
    if transport == "rtm" and not method.rtm:
        raise validation(f"`{action}` works over the Web API only")
    if transport == "web" and not method.web:
        raise validation(f"`{action}` works over RTM only")
    return method
