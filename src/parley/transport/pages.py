"""The browser side served by the server (SPEC §10): the demo page with the widget, widget.js and
the agent console, each with a Content-Security-Policy header; plus CORS on the customer
endpoints the widget calls, so that the widget works when embedded on any other site.

The files live in `parley/web/` (package data). They are read on each request (they are small),
answered with a strong validator (ETag) and compressed when the browser accepts it.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

_HTML = "text/html"
_JS = "text/javascript"
_CSS = "text/css"

# url path -> (file in web/, content type); the demo page and the console page are handled apart.
_ASSETS: dict[str, tuple[str, str]] = {
    "/demo.css": ("demo.css", _CSS),
    "/agent/console.js": ("console.js", _JS),
    "/agent/console.css": ("console.css", _CSS),
}

# A Host header we are willing to repeat inside the policy (anything else falls back to 'self').
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")

# Customer endpoints a widget on another origin calls (the RTM WebSocket needs no CORS).
_CORS_PATHS = re.compile(r"^/v3\.(?:0/customer/(?:token|config)|[04-7]/customer/action/[A-Za-z_]+)$")


def page_csp(request: web.Request, *, frame_ancestors: str) -> str:
    """No inline script or style, no plugins, talk only to this server (HTTP and WebSocket)."""
    connect = "'self'"
    if _HOST.fullmatch(request.host):
        connect += f" ws://{request.host} wss://{request.host}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


# A script file is not a document: its own policy only has to forbid everything.
ASSET_CSP = "default-src 'none'; frame-ancestors 'none'"


def _read(name: str) -> bytes:
    return (WEB_DIR / name).read_bytes()


def _answer(
    request: web.Request, body: bytes, content_type: str, headers: dict[str, str], cache: str = "no-cache"
) -> web.Response:
    """The body with its headers, or 304 when the browser already has it; gzip when accepted."""
    etag = hashlib.sha256(body).hexdigest()[:32]
    common = {
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": cache,
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Vary": "Accept-Encoding",
        **headers,
    }
    if request.if_none_match and any(tag.value == etag for tag in request.if_none_match):
        resp = web.Response(status=304, headers=common)
    else:
        resp = web.Response(body=body, content_type=content_type, charset="utf-8", headers=common)
        if len(body) > 1024:
            resp.enable_compression()
    resp.headers["ETag"] = f'W/"{etag}"'
    return resp


def _license_id(request: web.Request) -> int:
    raw = request.query.get("license_id", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 2**31 else 1


async def demo_page(request: web.Request) -> web.Response:
    license_id = _license_id(request)
    origin = f"{request.scheme}://{request.host}"
    snippet = f'<script src="{origin}/widget.js" data-license-id="{license_id}" async></script>'
    body = (
        _read("demo.html")
        .decode()
        .replace("{{license_id}}", str(license_id))
        .replace("{{snippet}}", html.escape(snippet))
        .encode()
    )
    headers = {"Content-Security-Policy": page_csp(request, frame_ancestors="'self'")}
    return _answer(request, body, _HTML, headers)


async def widget_js(request: web.Request) -> web.Response:
    headers = {
        "Content-Security-Policy": ASSET_CSP,
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    return _answer(request, _read("widget.js"), _JS, headers, cache="public, max-age=300")


async def console_page(request: web.Request) -> web.Response:
    headers = {"Content-Security-Policy": page_csp(request, frame_ancestors="'none'"), "X-Frame-Options": "DENY"}
    return _answer(request, _read("console.html"), _HTML, headers)


async def console_redirect(request: web.Request) -> web.Response:
    location = "/agent/" + (f"?{request.query_string}" if request.query_string else "")
    raise web.HTTPMovedPermanently(location)


async def asset(request: web.Request) -> web.Response:
    name, content_type = _ASSETS[request.path]
    headers = {"Content-Security-Policy": ASSET_CSP}
    return _answer(request, _read(name), content_type, headers)


async def preflight(request: web.Request) -> web.Response:
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": "86400",
        },
    )


async def _cors_on_customer_api(request: web.Request, response: web.StreamResponse) -> None:
    """`*` without credentials: any site may embed the widget, but no other site can ride on a
    visitor's cookie (a cross-origin widget keeps its refresh token in its own localStorage)."""
    if _CORS_PATHS.match(request.path) and "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = "*"


def add_cors(app: web.Application) -> None:
    """CORS for the customer token, config and Web API endpoints (preflight + response header)."""
    app.router.add_route("OPTIONS", "/v3.0/customer/token", preflight)
    app.router.add_route("OPTIONS", "/v3.0/customer/config", preflight)
    app.router.add_route("OPTIONS", r"/{version:v3\.[04-7]}/customer/action/{action}", preflight)
    app.on_response_prepare.append(_cors_on_customer_api)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", demo_page)
    app.router.add_get("/widget.js", widget_js)
    app.router.add_get("/agent", console_redirect)
    app.router.add_get("/agent/", console_page)
    for path in _ASSETS:
        app.router.add_get(path, asset)
    add_cors(app)
