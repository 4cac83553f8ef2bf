"""Rules both stores apply the same way, so that they differ only in how they read and write."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson

from parley.protocol import limits
from parley.protocol.errors import ApiError, ErrorType, validation
from parley.store.records import Chat, Customer, MembersChange, NewEvent, ScopesChange, StoredEvent, Thread


def merge_properties(current: dict[str, Any], update: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge at name level, `null` deletes; answers (merged, the names that really changed)."""
    merged = {ns: dict(values) for ns, values in current.items()}
    changed: dict[str, dict[str, Any]] = {}
    for namespace, values in update.items():
        target = merged.setdefault(namespace, {})
        for name, value in values.items():
            if value is None:
                if name in target:
                    del target[name]
                    changed.setdefault(namespace, {})[name] = None
            elif name not in target or not same_json(target[name], value):
                target[name] = value
                changed.setdefault(namespace, {})[name] = value
        if not target:
            del merged[namespace]
    return merged, changed


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: Python's 0 == False and 1 == 1.0 must not hide a change."""
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def fts_query(query: str) -> str:
    """Every word must appear (prefix match); quoting keeps FTS operators in user text inert."""
    words = [w.replace('"', "") for w in query.split()]
    return " ".join(f'"{w}"*' for w in words if w) or '""'


def searchable(event: StoredEvent) -> str:
    body = event.body
    if event.type in ("message", "system_message"):
        return str(body.get("text", ""))
    if event.type == "file":
        return str(body.get("name", ""))
    if event.type == "filled_form":
        return " ".join(str(f.get("value", "")) for f in body.get("fields", []))
    return ""


def require_groups(groups: Iterable[int], known: set[int]) -> None:
    missing = sorted(set(groups) - known)
    if missing:
        raise ApiError(ErrorType.GROUP_NOT_FOUND, f"group {missing[0]} does not exist")


def agent_groups(groups: list[int], known: set[int]) -> list[int]:
    """An agent's groups: the given ones, which must exist, plus group 0 (every agent)."""
    require_groups(groups, known)
    return sorted({0, *groups})


def rescope(chat: Chat, add: list[int], remove: list[int], known: set[int]) -> ScopesChange:
    """Apply update_chat_scopes to chat (in place); at least one group must remain."""
    require_groups(add, known)
    before = set(chat.scopes)
    after = (before | set(add)) - set(remove)
    if not after:
        raise validation("`remove_scopes` would leave the chat without any group")
    chat.scopes = sorted(after)
    return ScopesChange(chat, sorted(after - before), sorted(before - after))


def apply_customer_changes(customer: Customer, changes: dict[str, Any]) -> None:
    """update_customer's partial update: pages and properties merge, the rest replaces."""
    if "name" in changes:
        customer.name = changes["name"]
    if "email" in changes:
        customer.email = changes["email"]
    monitoring = changes.get("monitoring", {})
    if "page" in monitoring:
        customer.monitoring["page"] = {**customer.monitoring.get("page", {}), **monitoring["page"]}
    if "timezone" in monitoring:
        customer.monitoring["timezone"] = monitoring["timezone"]
    if "properties" in changes:
        customer.properties = {**customer.properties, **changes["properties"]}
        if len(customer.properties) > limits.CUSTOMER_PROPERTIES_MAX:
            raise validation(f"a customer holds at most {limits.CUSTOMER_PROPERTIES_MAX} properties")


class AlreadyAssigned(ApiError):
    """change_members(only_if_unassigned=True) found an agent there already: another node's router
    (or an agent joining by hand) got there first. The router skips the thread."""

    def __init__(self) -> None:
        super().__init__(ErrorType.CHAT_INACTIVE, "the thread already has an agent")


def set_members(
    chat: Chat, agent_ids: list[str], scopes: list[int] | None, thread_id: str | None, only_if_unassigned: bool = False
) -> list[str]:
    """change_members' rule for the chat row (in place); answers the agents it had before."""
    if thread_id is not None and chat.active_thread_id != thread_id:
        raise ApiError(ErrorType.CHAT_INACTIVE, "the thread is no longer active")
    # A chat's agents are its active thread's (a new thread starts with none), so "the chat has
    # agents" is "the thread is assigned". Checked inside the store's serialised write step, this
    # is what keeps two nodes routing at once from giving one thread to two agents.
    if only_if_unassigned and chat.agent_ids:
        raise AlreadyAssigned()
    before = chat.agent_ids
    chat.agent_ids = list(dict.fromkeys(agent_ids))
    if scopes is not None:
        chat.scopes = scopes
    return before


def assign_thread(thread: Thread, chat: Chat) -> bool:
    """change_members' rule for the active thread (in place): the first agent is its assignee,
    none puts it in the queue. True when it enters the queue now (it goes to the end; a thread
    that was waiting already keeps its place)."""
    thread.user_ids = list(dict.fromkeys([*thread.user_ids, *chat.agent_ids]))
    thread.agent_id = chat.agent_ids[0] if chat.agent_ids else None
    was_queued = thread.queued
    thread.queued = thread.agent_id is None
    return thread.queued and not was_queued


def system_event(system: tuple[str, str]) -> NewEvent:
    kind, text = system
    return NewEvent("system_message", None, {"text": text, "system_message_type": kind})


def members_change(chat: Chat, thread: Thread | None, before: list[str], event: StoredEvent | None) -> MembersChange:
    added = [a for a in chat.agent_ids if a not in before]
    removed = [a for a in before if a not in chat.agent_ids]
    return MembersChange(chat, thread, added, removed, event)


def settle(outcomes: Iterable[tuple[asyncio.Future, Any, BaseException | None]]) -> None:
    """Hand each operation of a committed (or failed) batch its result or its error; an
    operation whose caller gave up (cancelled) gets neither."""
    for fut, result, exc in outcomes:
        if fut.cancelled():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
