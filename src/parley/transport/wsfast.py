"""Writing a WebSocket text frame without a coroutine when the socket can take it right now.

aiohttp's public `send_frame` is a coroutine, so every write would cost a task switch. For an
uncompressed frame, aiohttp itself writes synchronously and only awaits when the transport is
paused (its buffer is over the high-water mark). `write_now` does that synchronous part and says
False whenever it cannot, so the caller falls back to the coroutine, which also handles the
drain. It touches aiohttp internals: the version is pinned in pyproject.toml, and every RTM test
exercises this path.
"""

from __future__ import annotations

from aiohttp import WSMsgType, web


def write_now(ws: web.WebSocketResponse, frame: bytes) -> bool:
    writer = ws._writer
    if writer is None or writer.compress or ws.closed:
        return False
    transport = writer.transport
    if transport is None or transport.is_closing() or writer.protocol._paused:
        return False
    writer._write_websocket_frame(frame, WSMsgType.TEXT, 0)
    return True
