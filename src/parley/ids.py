"""Identifiers and the microsecond clock that gives `order` and `created_at` together."""

from __future__ import annotations

import functools
import secrets
import time
import uuid
from datetime import UTC, datetime

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def short_id(length: int = 10) -> str:
    """Chat and thread ids in LiveChat's style (`PJ0MRSHTDG`): 36^10 ≈ 3.6e15 values."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def user_id() -> str:
    return str(uuid.uuid4())


def file_token() -> str:
    return secrets.token_urlsafe(24)


def now_us() -> int:
    return time.time_ns() // 1000


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def rfc3339_us(us: int) -> str:
    """`2026-11-28T21:42:40.123456Z` from Unix microseconds, exactly (no float rounding)."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_second(seconds)}.{micros:06d}Z"


class OrderClock:
    """Strictly increasing microsecond stamps: `order` is comparable across a licence and
    `created_at` is the same instant, so the two always agree (SPEC §12)."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self) -> int:
        stamp = max(now_us(), self.last + 1)
        self.last = stamp
        return stamp
