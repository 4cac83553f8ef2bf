"""Who is asking: the requester of one request, whatever transport carried it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from parley.store.records import License


@dataclass(slots=True)
class Ctx:
    license: License
    side: str
    user_id: str
    conn_id: int | None = None
    t0: float = field(default_factory=time.perf_counter)
    groups: list[int] = field(default_factory=list)
    """The agent's groups (empty for a customer)."""
    after: list[bytes] = field(default_factory=list)
    """Pushes for the requesting connection itself, written after its response."""

    @property
    def license_id(self) -> int:
        return self.license.id
