"""Wire shapes of SPEC §4 objects, built from store records."""

from __future__ import annotations

from typing import Any

from parley.ids import rfc3339_us
from parley.store.records import Agent, Chat, Customer, StoredEvent, Thread


def event(e: StoredEvent) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": e.id,
        "type": e.type,
        "order": e.order,
        "author_id": e.author_id,
        "created_at": rfc3339_us(e.order),
        "timestamp": e.order // 1_000_000,
        "recipients": e.recipients,
    }
    if e.custom_id is not None:
        view["custom_id"] = e.custom_id
    view.update(e.body)
    return view


def visible(e: StoredEvent, side: str) -> bool:
    return side == "agent" or e.recipients == "all"


def customer(c: Customer, present: bool) -> dict[str, Any]:
    page = c.monitoring.get("page", {})
    return {
        "id": c.id,
        "type": "customer",
        "name": c.name or "",
        "email": c.email or "",
        "present": present,
        "last_seen_timestamp": c.last_seen_timestamp,
        "monitoring": {
            "page": {"url": page.get("url", ""), "title": page.get("title", ""), "referrer": page.get("referrer", "")},
            "timezone": c.monitoring.get("timezone", ""),
        },
        "properties": c.properties,
    }


def agent(a: Agent, present: bool, *, show_email: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": a.id,
        "type": "agent",
        "name": a.name,
        "avatar": a.avatar,
        "present": present,
        "last_seen_timestamp": a.last_seen_timestamp,
        "routing_status": a.routing_status,
    }
    if show_email:
        view["email"] = a.email
    return view


def thread(t: Thread, events: list[StoredEvent], side: str) -> dict[str, Any]:
    return {
        "id": t.id,
        "active": t.active,
        "order": t.order,
        "created_at": rfc3339_us(t.order),
        "user_ids": t.user_ids,
        "events": [event(e) for e in events if visible(e, side)],
        "properties": t.properties,
    }


def chat_head(c: Chat, users: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": c.id, "order": c.order, "users": users, "properties": c.properties, "scopes": {"groups": c.scopes}}
