"""Customer identity: tokens, login, profile updates, bans and uploads (SPEC §2, §5)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from parley import ids
from parley.protocol import methods as m
from parley.protocol.errors import ApiError, ErrorType
from parley.service import views
from parley.service.chats import ChatService
from parley.service.context import Ctx
from parley.service.tokens import Tokens
from parley.store.records import Customer, License, StoredFile


class CustomerService:
    def __init__(self, chats: ChatService, tokens: Tokens) -> None:
        self.chats = chats
        self.store = chats.store
        self.bus = chats.bus
        self.tokens = tokens

    @staticmethod
    def check_not_banned(customer: Customer) -> None:
        if customer.banned_until > time.time():
            raise ApiError(ErrorType.CUSTOMER_BANNED, "this customer is banned")

    async def issue_tokens(self, license: License, customer_id: str | None) -> dict[str, Any]:
        """A new customer when customer_id is None, else fresh tokens for that one."""
        if customer_id is None:
            customer = await self.store.create_customer(license.id)
        else:
            found = await self.store.get_customer(license.id, customer_id)
            if found is None:
                raise ApiError(ErrorType.AUTHENTICATION, "the refresh token names an unknown customer")
            customer = found
        self.check_not_banned(customer)
        return {
            "access_token": self.tokens.issue("customer", license.id, customer.id),
            "token_type": "Bearer",
            "expires_in": self.tokens.lifetime,
            "refresh_token": self.tokens.issue("customer", license.id, customer.id, kind="refresh"),
            "customer_id": customer.id,
            "license_id": license.id,
        }

    async def authenticate(self, license: License, token: str) -> Customer:
        customer_id = self.tokens.verify(token, "customer", license.id)
        customer = await self.store.get_customer(license.id, customer_id)
        if customer is None:
            raise ApiError(ErrorType.AUTHENTICATION, "the token names an unknown customer")
        self.check_not_banned(customer)
        return customer

    async def login(self, ctx: Ctx, req: m.Login) -> dict[str, Any]:
        if req.customer is not None:
            changes = msgspec.to_builtins(req.customer)
            if changes:
                await self.store.update_customer(ctx.license_id, ctx.user_id, changes)
        chats, total = await self.store.list_customer_chats(ctx.license_id, ctx.user_id, 0, req.last_chats_limit)
        return {
            "customer_id": ctx.user_id,
            "static_config_path": f"/v3.0/customer/config?license_id={ctx.license_id}",
            "last_chats_summary": [await self.chats.chat_summary(ctx, c, req.last_threads_limit) for c in chats],
            "total_chats": total,
        }

    async def update_customer(self, ctx: Ctx, req: m.UpdateCustomer) -> dict[str, Any]:
        changes = msgspec.to_builtins(req.customer)
        if not changes:
            customer = await self.store.get_customer(ctx.license_id, ctx.user_id)
            assert customer is not None
            return {"customer": views.customer(customer, self.bus.is_present(customer.id))}
        before = await self.store.get_customer(ctx.license_id, ctx.user_id)
        customer = await self.store.update_customer(ctx.license_id, ctx.user_id, changes)
        view = views.customer(customer, self.bus.is_present(customer.id))
        active = await self.store.active_chats(ctx.license_id, ctx.user_id)
        for chat in active:
            self.chats.announce(
                ctx, chat.agent_ids, "customer_updated", {"chat_id": chat.id, "customer": view}, news=False
            )
        page = customer.monitoring.get("page", {})
        if before is not None and page != before.monitoring.get("page", {}):
            payload = {
                "customer_id": customer.id,
                "url": page.get("url", ""),
                "title": page.get("title", ""),
                "referrer": page.get("referrer", ""),
                "opened_at": ids.rfc3339_us(ids.now_us()),
            }
            agents = sorted({a for chat in active for a in chat.agent_ids})
            self.chats.announce(ctx, agents, "customer_page_updated", payload, news=False)
        return {"customer": view}

    async def upload_file(self, ctx: Ctx, name: str, content_type: str, data: bytes, base_url: str) -> dict[str, Any]:
        token = ids.file_token()
        await self.store.put_file(StoredFile(token, ctx.license_id, name, content_type, len(data), data))
        return {"url": f"{base_url}/files/{token}"}
