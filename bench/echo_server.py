"""Baseline: the least an aiohttp+uvloop WebSocket server can do with parley's frames.

It echoes every text frame unchanged and answers the customer token request with a fixed body,
so the load generator drives it with exactly the requests and frames it sends to parley. Parley's
figures are reported as ratios to this server's, measured in the same run on the same core,
because absolute timings on this machine drift up to 2x between runs.

With `--floor` it is the *transport floor* instead: for every frame it parses the JSON and writes
two frames, an answer and a push, which is the least socket work a `send_event` takes (one frame
read, two written; parley writes the push to the agent's socket, the floor to the same one). What
parley costs beyond the floor is validation, storage and routing.

Run: python -m bench.echo_server [--port 0] [--floor]; prints `listening on http://127.0.0.1:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket

import orjson
import uvloop
from aiohttp import WSMsgType, web

TOKEN_BODY = (
    b'{"access_token":"echo","token_type":"Bearer","expires_in":28800,'
    b'"refresh_token":"echo","customer_id":"echo","license_id":1}'
)


async def token(_request: web.Request) -> web.Response:
    return web.Response(body=TOKEN_BODY, content_type="application/json")


async def rtm(request: web.Request) -> web.WebSocketResponse:
    # compress=False: parley's clients in the bench never negotiate permessage-deflate either.
    ws = web.WebSocketResponse(compress=False, max_msg_size=64 * 1024)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


async def floor(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=64 * 1024)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            req = orjson.loads(msg.data)
            answer = {"action": req.get("action"), "type": "response", "success": True, "payload": {}}
            answer["request_id"] = req.get("request_id")
            await ws.send_str(orjson.dumps(answer).decode())
            push = {"action": "incoming_event", "type": "push", "payload": req.get("payload")}
            await ws.send_str(orjson.dumps(push).decode())
    return ws


def make_app(floor_mode: bool = False) -> web.Application:
    app = web.Application()
    app.router.add_post("/v3.0/customer/token", token)
    app.router.add_post("/v3.0/agent/token", token)
    handler = floor if floor_mode else rtm
    app.router.add_get("/v3.0/customer/rtm/ws", handler)
    app.router.add_get("/v3.0/agent/rtm/ws", handler)
    return app


async def serve(host: str, port: int, floor_mode: bool = False) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(make_app(floor_mode), access_log=None, handle_signals=True)
    await runner.setup()
    # A deep accept backlog so the connect storm measures the server, not SYN drops.
    await web.SockSite(runner, sock, backlog=4096).start()
    print(f"listening on http://{host}:{sock.getsockname()[1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--floor", action="store_true", help="answer and push for every frame (transport floor)")
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.host, args.port, args.floor))


if __name__ == "__main__":
    main()
