"""The in-process bus of a single node: a map from user id to that user's open connections."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from parley.bus.base import Bus, Connection


class LocalBus(Bus):
    def __init__(self) -> None:
        self._by_user: dict[str, dict[int, Connection]] = {}

    def attach(self, conn: Connection) -> None:
        self._by_user.setdefault(conn.user_id, {})[conn.conn_id] = conn

    def detach(self, conn: Connection) -> None:
        conns = self._by_user.get(conn.user_id)
        if conns is not None:
            conns.pop(conn.conn_id, None)
            if not conns:
                del self._by_user[conn.user_id]

    def connection_count(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    def is_present(self, user_id: str) -> bool:
        return user_id in self._by_user

    def users(self) -> Iterator[tuple[str, str]]:
        """(user_id, side) of every user with a connection here."""
        for user_id, conns in self._by_user.items():
            yield user_id, next(iter(conns.values())).side

    def publish(
        self, user_ids: Iterable[str], frame: bytes, *, exclude: int | None = None, t0: float | None = None
    ) -> None:
        for user_id in user_ids:
            for conn in tuple(self._by_user.get(user_id, {}).values()):
                if conn.conn_id != exclude:
                    conn.deliver(frame, t0)

    def disconnect_user(self, user_id: str, last_frame: bytes | None, code: int) -> None:
        for conn in tuple(self._by_user.get(user_id, {}).values()):
            conn.disconnect(last_frame, code)
