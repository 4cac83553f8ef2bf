"""`parley serve`: start a node, print where it listens, stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import ssl
import sys

import uvloop
from aiohttp import web

from parley import logs
from parley.config import Settings
from parley.node import Node
from parley.protocol.errors import ApiError
from parley.transport.app import create_app

log = logging.getLogger("parley")

DEMO_EMAIL = "demo@parley.local"


async def ensure_demo(node: Node) -> str:
    """Licence 1 with group 0 and one agent; answers the agent's password (kept in the database)."""
    if await node.store.get_license(1) is None:
        await node.store.create_license("Demo")
    password = await node.store.meta("demo_agent_password", lambda: secrets.token_urlsafe(12))
    if await node.store.get_agent_by_email(1, DEMO_EMAIL) is None:
        # Another node starting on the same database may have created it first.
        with contextlib.suppress(ApiError):
            await node.accounts.create_agent(1, DEMO_EMAIL, "Demo Agent", password, [], None)
    return password


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A server TLS context from --tls-cert/--tls-key; None serves plain HTTP. A bad file is an
    OSError / SSLError, reported as one line like every start-up error."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


async def serve(settings: Settings) -> None:
    tls = tls_context(settings)  # before the database opens: a bad certificate fails fast
    node = Node(settings)
    await node.start()
    app = create_app(node)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True, ssl_context=tls)
    await site.start()
    host, port = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if tls else "http"
    if settings.demo:
        password = await ensure_demo(node)
        print(f"demo widget page: {scheme}://{shown}:{port}/?license_id=1")
        print(f"agent console: {scheme}://{shown}:{port}/agent/?license_id=1")
        print(f"agent login: {DEMO_EMAIL} {password}")
    # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's
    # full collections, whose pause grows with the number of objects they walk.
    gc.freeze()
    # Handlers first: whoever reads "listening on" may send SIGTERM at once, and it must stop us
    # cleanly (exit 0), not kill us with the default action.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {scheme}://{shown}:{port}", flush=True)
    log.info("listening", extra={"host": host, "port": port})

    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
    await node.stop()


def run(settings: Settings) -> int:
    logs.setup(settings.log_level)
    # The event loop and the SQLite writer thread hand every write back and forth; with the
    # default 5 ms GIL switch interval one can make the other wait that long (bench: p99 push
    # latency ~5.5 ms -> ~3.5 ms at half saturation).
    sys.setswitchinterval(0.0005)
    try:
        uvloop.run(serve(settings))
    except OSError as exc:  # the database or the port is not to be had: one line, not a traceback
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    return 0
