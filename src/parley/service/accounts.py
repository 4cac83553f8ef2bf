"""Licences, groups and agents: what operators manage (SPEC §9) and agent credentials."""

from __future__ import annotations

import asyncio
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from parley.protocol.errors import ApiError, ErrorType, validation
from parley.service.tokens import Tokens
from parley.store.base import Store
from parley.store.records import License

_hasher = PasswordHasher()
# Verifying against this keeps "no such agent" as slow as "wrong password" (no e-mail probing).
_DUMMY_HASH = _hasher.hash("parley-no-such-agent")


class Accounts:
    def __init__(self, store: Store, tokens: Tokens | None = None) -> None:
        self.store = store
        self.tokens = tokens

    async def create_license(self, name: str) -> dict[str, Any]:
        if not name.strip():
            raise validation("`--name` must not be empty")
        license = await self.store.create_license(name)
        return {"license_id": license.id, "organization_id": license.organization_id}

    async def set_license(self, license_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Licence settings: `prechat_form` and `public_agent_email` (bool), `max_chats_per_agent` (1-100)."""
        if not changes:
            raise validation("give at least one setting to change")
        limit = changes.get("max_chats_per_agent")
        if limit is not None and not 1 <= limit <= 100:
            raise validation("`--max-chats-per-agent` must be between 1 and 100")
        license = await self.store.update_license_settings(license_id, changes)
        return {"license_id": license.id, "settings": license.settings}

    async def _require_license(self, license_id: int) -> License:
        license = await self.store.get_license(license_id)
        if license is None:
            raise ApiError(ErrorType.LICENSE_NOT_FOUND, f"licence {license_id} does not exist")
        return license

    async def create_group(self, license_id: int, name: str) -> dict[str, Any]:
        await self._require_license(license_id)
        if not name.strip():
            raise validation("`--name` must not be empty")
        return {"id": await self.store.create_group(license_id, name)}

    async def create_agent(
        self, license_id: int, email: str, name: str, password: str, groups: list[int], max_chats: int | None
    ) -> dict[str, Any]:
        await self._require_license(license_id)
        if "@" not in email:
            raise validation("`--email` must be an e-mail address")
        if len(password) < 8:
            raise validation("`--password` needs at least 8 characters")
        if max_chats is not None and not 1 <= max_chats <= 100:
            raise validation("`--max-chats` must be between 1 and 100")
        hashed = await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)
        agent = await self.store.create_agent(license_id, email.lower(), name, hashed, groups, max_chats)
        return {"agent_id": agent.id}

    async def list_agents(self, license_id: int) -> list[dict[str, Any]]:
        await self._require_license(license_id)
        return [
            {
                "agent_id": a.id,
                "email": a.email,
                "name": a.name,
                "groups": a.groups,
                "routing_status": a.routing_status,
                "max_chats": a.max_chats,
            }
            for a in await self.store.list_agents(license_id)
        ]

    async def agent_token(self, license: License, email: str, password: str) -> dict[str, Any]:
        assert self.tokens is not None
        agent = await self.store.get_agent_by_email(license.id, email.lower())
        hashed = agent.password_hash if agent else _DUMMY_HASH
        try:
            await asyncio.get_running_loop().run_in_executor(None, _hasher.verify, hashed, password)
        except (VerificationError, InvalidHashError):
            agent = None
        if agent is None:
            raise ApiError(ErrorType.AUTHENTICATION, "wrong e-mail or password")
        return {
            "access_token": self.tokens.issue("agent", license.id, agent.id),
            "token_type": "Bearer",
            "expires_in": self.tokens.lifetime,
            "agent_id": agent.id,
            "license_id": license.id,
        }
