"""The Bus interface: who is connected, and delivering pushes to every connection of a user."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

PresenceChange = Literal["came", "left", "expired"]
PresenceWatcher = Callable[[str, str, PresenceChange], None]
"""(user_id, side, change), for a change another node caused: "came" (now connected somewhere),
"left" (its last connection anywhere closed: the 30 s grace of SPEC §7 starts) or "expired"
(its node vanished without saying goodbye: gone now, no grace)."""


class Connection(Protocol):
    """What the bus needs of a live socket; the transport implements it."""

    conn_id: int
    user_id: str
    side: str

    def deliver(self, frame: bytes, t0: float | None = None) -> None:
        """Queue a frame for writing; never blocks. t0 is when the causing request arrived."""

    def disconnect(self, last_frame: bytes | None, code: int) -> None:
        """Send last_frame (if any), then close with code."""


class Bus(ABC):
    async def start(self) -> None:
        """Connect to whatever carries pushes between nodes; nothing to do for a single node."""
        return None

    async def stop(self) -> None:
        """Leave the cluster; nothing to do for a single node."""
        return None

    def watch_presence(self, watcher: PresenceWatcher) -> None:
        """Call watcher when another node changes whether a user is present. A single node has
        no other nodes: its own changes reach the service through the transport already."""
        return None

    @abstractmethod
    def attach(self, conn: Connection) -> None: ...

    @abstractmethod
    def detach(self, conn: Connection) -> None: ...

    @abstractmethod
    def connection_count(self, user_id: str) -> int: ...

    @abstractmethod
    def is_present(self, user_id: str) -> bool: ...

    @abstractmethod
    def publish(
        self, user_ids: Iterable[str], frame: bytes, *, exclude: int | None = None, t0: float | None = None
    ) -> None:
        """Deliver frame to every connection of every user, except connection `exclude`."""

    @abstractmethod
    def disconnect_user(self, user_id: str, last_frame: bytes | None, code: int) -> None: ...
