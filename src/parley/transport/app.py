"""The aiohttp application: routes, the Web API, token endpoints, health, metrics, files."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSCloseCode, web

from parley.node import Node, Side
from parley.protocol import limits, v35
from parley.protocol import methods as m
from parley.protocol.envelope import push
from parley.protocol.errors import ApiError, ErrorType, too_large, validation
from parley.service.context import Ctx
from parley.service.dispatch import lookup
from parley.service.ratelimit import KeyedBuckets, WindowCounter
from parley.store.records import License
from parley.transport import pages, rtm, rtm_v35
from parley.transport.metrics import Metrics

log = logging.getLogger("parley.http")

SUPPORTED_VERSIONS = {"v3.0"}


class TokenRequest(m.Base):
    license_id: int
    refresh_token: str | None = None


class AgentTokenRequest(m.Base):
    license_id: int
    email: str
    password: str


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(exc: ApiError) -> web.Response:
    return _json(exc.to_payload(), exc.kind.code)


class Web:
    """Transport state of one node: open sockets, limiters, metrics."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.metrics = Metrics()
        self._request_keys: dict[tuple[str, str | None, str], tuple[str, str, str]] = {}
        self.connections: set[rtm.RtmConnection] = set()
        self._sweeper: asyncio.Task | None = None
        self.web_buckets = KeyedBuckets(node.settings.rate_limit, limits.RATE_BURST)
        self.new_customers_per_ip = WindowCounter(node.settings.token_rate_per_min, 60.0)
        self._orgs: dict[str, int] = {}
        """organization_id -> license_id; both are fixed for a licence's life, so never stale."""
        node.chats.on_events_stored = self.metrics.count_events

    # -- bookkeeping used by rtm -------------------------------------------------------

    def count(self, side: str, action: str | None, outcome: str) -> None:
        key = (side, action, outcome)
        series = self._request_keys.get(key)
        if series is None:  # an unknown action is counted as "unknown", not as a new series
            methods = (self.node.sides[side].methods, self.node.v35_sides.get(side, self.node.sides[side]).methods)
            known = action if action and any(action in table for table in methods) else "unknown"
            series = self._request_keys[key] = (side, known, outcome)
        self.metrics.requests[series] += 1

    async def sweep_requests(self) -> None:
        """Time out RTM requests running longer than REQUEST_TIMEOUT_S (checked once a second)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            oldest = loop.time() - limits.REQUEST_TIMEOUT_S
            for conn in self.connections:
                if conn.busy_since and conn.busy_since <= oldest:
                    conn.time_out()

    async def start_sweeper(self, app: web.Application) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self.sweep_requests())

    async def stop_sweeper(self, app: web.Application) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    def open_connection(self, conn: rtm.RtmConnection) -> None:
        self.connections.add(conn)
        self.metrics.connections[conn.side] += 1

    def close_connection(self, conn: rtm.RtmConnection) -> None:
        self.connections.discard(conn)
        self.metrics.connections[conn.side] -= 1

    # -- request helpers ---------------------------------------------------------------

    async def license_from_query(self, request: web.Request) -> License:
        raw = request.query.get("license_id")
        org = request.query.get("organization_id")
        if raw is None and org is not None:
            return await self.license_by_org(org)
        if raw is None:
            raise validation("query parameter `license_id` (or `organization_id`) is required")
        try:
            license_id = int(raw)
        except ValueError:
            raise validation("query parameter `license_id` must be a positive integer") from None
        if license_id <= 0:
            raise validation("query parameter `license_id` must be a positive integer")
        return await self.node.license(license_id)

    async def license_by_org(self, organization_id: str) -> License:
        """The tenant of `organization_id=<uuid>` (the SDK dialect's query parameter, SPEC §11)."""
        license_id = self._orgs.get(organization_id)
        if license_id is None:
            found = await self.node.store.get_license_by_org(organization_id)
            if found is None:
                raise ApiError(ErrorType.LICENSE_NOT_FOUND, f"organization {organization_id!r} does not exist")
            license_id = self._orgs[organization_id] = found.id
        return await self.node.license(license_id)

    def side_of(self, request: web.Request) -> Side:
        version = request.match_info["version"]
        side = request.match_info["side"]
        if version in v35.VERSIONS and side in self.node.v35_sides:
            return self.node.v35_sides[side]
        if version not in SUPPORTED_VERSIONS:
            raise ApiError(
                ErrorType.UNSUPPORTED_VERSION,
                f"API version {version} is not supported here; use v3.0 (or v3.4 to v3.7 for the customer API)",
            )
        return self.node.sides[side]

    async def read_json(self, request: web.Request, limit: int = limits.FRAME_MAX_BYTES) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > limit:
            raise too_large("body", f"{limit // 1024} KiB")
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise too_large("body", f"{limit // 1024} KiB")
        if not body.strip():
            return {}
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise validation(f"body is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise validation("body must be a JSON object")
        return obj

    @staticmethod
    def bearer(request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise ApiError(ErrorType.AUTHENTICATION, "send `Authorization: Bearer <access_token>`")
        return header[7:].strip()

    # -- handlers ----------------------------------------------------------------------

    async def action(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        action = request.match_info["action"]
        side_name = request.match_info["side"]
        try:
            side = self.side_of(request)
            license = await self.license_from_query(request)
            method = lookup(side.methods, action, "web")
            token = self.bearer(request)
            who = await side.authenticate(license, token)
            if not self.web_buckets.take(token):
                raise ApiError(ErrorType.TOO_MANY_REQUESTS, "too many requests with this token; slow down")
            ctx = Ctx(license, side.name, who.user_id, None, t0, who.groups)
            if action == "upload_file":
                payload = await self.upload(request, ctx)
            else:
                typed = m.decode(method.kind, await self.read_json(request))
                payload = await method.handler(ctx, typed)
        except ApiError as exc:
            if side_name in self.node.sides:
                self.count(side_name, action, exc.kind.type_name)
            return _error(exc)
        self.count(side_name, action, "success")
        return _json(payload)

    async def upload(self, request: web.Request, ctx: Ctx) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > limits.UPLOAD_MAX_BYTES + 64 * 1024:
            raise too_large("file", "10 MiB")
        if not request.content_type.startswith("multipart/"):
            raise validation("upload_file takes multipart/form-data with one part `file`")
        reader = await request.multipart()
        found: tuple[str, str, bytes] | None = None
        async for part in reader:
            if part.name != "file" or found is not None:  # type: ignore[union-attr]
                raise validation("upload_file takes exactly one part, named `file`")
            data = await part.read()  # type: ignore[union-attr]
            if len(data) > limits.UPLOAD_MAX_BYTES:
                raise too_large("file", "10 MiB")
            name = part.filename or "file"  # type: ignore[union-attr]
            content_type = part.headers.get("Content-Type", "application/octet-stream")  # type: ignore[union-attr]
            found = (name[:255], content_type[:255], bytes(data))
        if found is None:
            raise validation("upload_file needs a part named `file`")
        customers = self.node.customers
        assert customers is not None
        base = f"{request.scheme}://{request.host}"
        return await customers.upload_file(ctx, found[0], found[1], found[2], base)

    async def file(self, request: web.Request) -> web.StreamResponse:
        stored = await self.node.store.get_file(request.match_info["token"])
        if stored is None:
            return _error(ApiError(ErrorType.NOT_FOUND, "file not found"))
        inline = stored.content_type.startswith("image/") and stored.content_type != "image/svg+xml"
        disposition = "inline" if inline else "attachment"
        safe_name = stored.name.replace('"', "").replace("\r", "").replace("\n", "")
        return web.Response(
            body=stored.data,
            headers={
                "Content-Type": stored.content_type if inline else _attachment_type(stored.content_type),
                "Content-Disposition": f'{disposition}; filename="{safe_name}"',
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=86400",
            },
        )

    async def customer_token(self, request: web.Request) -> web.Response:
        try:
            body = m.decode(TokenRequest, await self.read_json(request))
            license = await self.node.license(body.license_id)
            customers = self.node.customers
            assert customers is not None
            cookie_name = f"parley_customer_{license.id}"
            refresh = body.refresh_token or request.cookies.get(cookie_name)
            customer_id = None
            if refresh:
                try:
                    assert self.node.tokens is not None
                    customer_id = self.node.tokens.verify(refresh, "customer", license.id, kind="refresh")
                except ApiError:
                    if body.refresh_token:
                        raise
            if customer_id is None and not self.new_customers_per_ip.allow(request.remote or "?"):
                raise ApiError(ErrorType.TOO_MANY_REQUESTS, "too many new customers from this address; wait a minute")
            answer = await customers.issue_tokens(license, customer_id)
        except ApiError as exc:
            return _error(exc)
        resp = _json(answer)
        resp.set_cookie(
            cookie_name, answer["refresh_token"], max_age=365 * 24 * 3600, httponly=True, samesite="Lax", path="/"
        )
        return resp

    async def agent_token(self, request: web.Request) -> web.Response:
        try:
            body = m.decode(AgentTokenRequest, await self.read_json(request))
            license = await self.node.license(body.license_id)
            answer = await self.node.accounts.agent_token(license, body.email, body.password)
        except ApiError as exc:
            return _error(exc)
        return _json(answer)

    async def rtm(self, request: web.Request) -> web.StreamResponse:
        try:
            side = self.side_of(request)
            license = await self.license_from_query(request)
        except ApiError as exc:
            return _error(exc)
        if side is self.node.v35_sides.get(side.name):
            return await rtm.handle(self, request, side, license, rtm_v35.RtmV35Connection)
        return await rtm.handle(self, request, side, license)

    async def customer_config(self, request: web.Request) -> web.Response:
        try:
            license = await self.license_from_query(request)
        except ApiError as exc:
            return _error(exc)
        settings = license.settings
        return _json(
            {
                "license_id": license.id,
                "organization_id": license.organization_id,
                "name": license.name,
                "prechat_form": bool(settings.get("prechat_form", False)),
                "public_agent_email": bool(settings.get("public_agent_email", False)),
            }
        )

    async def healthz(self, request: web.Request) -> web.Response:
        try:
            await self.node.store.ping()
        except Exception as exc:
            return _json({"status": "unavailable", "error": str(exc)}, 503)
        return _json({"status": "ok"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def shutdown(self, app: web.Application) -> None:
        """SIGTERM: tell every socket why, then close it with 1001."""
        for conn in list(self.connections):
            if conn.user_id:
                conn.disconnect(
                    push(conn.side_cfg.disconnected_push, {"reason": "server_shutdown"}), WSCloseCode.GOING_AWAY
                )
            else:
                conn.disconnect(None, WSCloseCode.GOING_AWAY)


def _attachment_type(content_type: str) -> str:
    # Served as a download, so the browser never renders it in our origin.
    return content_type if content_type.isascii() and "/" in content_type else "application/octet-stream"


@web.middleware
async def request_ids(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    try:
        resp = await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        trace = uuid.uuid4().hex
        log.exception("request failed", extra={"trace_id": trace, "request_id": request_id, "path": request.path})
        resp = _error(ApiError(ErrorType.INTERNAL, f"internal error, trace id {trace}"))
    if not resp.prepared:
        resp.headers["X-Request-Id"] = request_id
    return resp


def create_app(node: Node) -> web.Application:
    web_ = Web(node)
    app = web.Application(middlewares=[request_ids], client_max_size=limits.UPLOAD_MAX_BYTES + 64 * 1024)
    side = "{side:customer|agent}"
    version = r"{version:v\d+\.\d+}"
    app.router.add_post(f"/{version}/{side}/action/{{action}}", web_.action)
    app.router.add_get(f"/{version}/{side}/rtm/ws", web_.rtm)
    app.router.add_post("/v3.0/customer/token", web_.customer_token)
    app.router.add_post("/v3.0/agent/token", web_.agent_token)
    app.router.add_get("/v3.0/customer/config", web_.customer_config)
    app.router.add_get("/files/{token}", web_.file)
    app.router.add_get("/healthz", web_.healthz)
    app.router.add_get("/metrics", web_.metrics_page)
    app.on_startup.append(web_.start_sweeper)
    app.on_shutdown.append(web_.shutdown)
    app.on_cleanup.append(web_.stop_sweeper)
    pages.add_routes(app)
    return app
