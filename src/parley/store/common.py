"""Rules both stores apply the same way: property merging and what archive search indexes."""

from __future__ import annotations

from typing import Any

import orjson

from parley.store.records import StoredEvent


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
