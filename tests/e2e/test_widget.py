"""The embeddable widget and the demo page in a real browser (SPEC §10), talking to a real server."""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.conftest import DESKTOP, PHONE, Agent, Tenant, make_tenant
from tests.support import Server

pytestmark = pytest.mark.e2e

WEB = Path(__file__).resolve().parents[2] / "src" / "parley" / "web"


def expect(target: Any) -> Any:
    from playwright.async_api import expect as pw_expect

    return pw_expect(target)


async def open_widget(page: Any) -> None:
    await page.get_by_role("button", name="Open chat").click()
    await expect(page.get_by_role("dialog", name="Chat")).to_be_visible()


async def send(page: Any, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await page.get_by_role("button", name="Send").click()


async def start_chat(page: Any, agent: Agent, text: str = "Hello, is anyone there?") -> str:
    """Open the widget, send the first message, and answer the chat id the agent was given."""
    await open_widget(page)
    await send(page, text)
    chat = (await agent.push("incoming_chat_thread"))["chat"]
    assert [e["text"] for e in chat["thread"]["events"] if e["type"] == "message"] == [text]
    return str(chat["id"])


# -- served files ------------------------------------------------------------------------------


async def test_pages_have_csp_nosniff_and_content_types(e2e_server: Server, http: aiohttp.ClientSession) -> None:
    base = e2e_server.base
    wanted = {
        "/": "text/html",
        "/?license_id=7": "text/html",
        "/widget.js": "text/javascript",
        "/agent/": "text/html",
        "/agent/console.js": "text/javascript",
        "/agent/console.css": "text/css",
        "/demo.css": "text/css",
    }
    for path, content_type in wanted.items():
        async with http.get(base + path) as resp:
            assert resp.status == 200, path
            assert resp.content_type == content_type, path
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            csp = resp.headers["Content-Security-Policy"]
            assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, path
            if content_type == "text/html":
                assert "script-src 'self'" in csp and "object-src 'none'" in csp, path
                assert "style-src 'self'" in csp and "connect-src 'self'" in csp, path
                body = await resp.text()
                assert "<script>" not in body and " style=" not in body and "<style" not in body, path
    async with http.get(base + "/agent/") as resp:
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    async with http.get(base + "/widget.js") as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    async with http.get(base + "/agent?license_id=3", allow_redirects=False) as resp:
        assert resp.status in (301, 302, 307, 308)
        assert resp.headers["Location"] == "/agent/?license_id=3"
    async with http.get(base + "/?license_id=7") as resp:
        assert 'data-license-id="7"' in await resp.text()


async def test_widget_endpoints_allow_cross_origin(e2e_server: Server, http: aiohttp.ClientSession) -> None:
    base = e2e_server.base
    headers = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    async with http.options(base + "/v3.0/customer/token", headers=headers) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    async with http.post(
        base + "/v3.0/customer/token", json={"license_id": 1}, headers={"Origin": "https://x.example"}
    ) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in r.headers


def test_widget_fits_the_size_budget_and_loads_nothing_third_party() -> None:
    source = (WEB / "widget.js").read_bytes()
    assert len(gzip.compress(source, compresslevel=9)) <= 15 * 1024
    urls = set(re.findall(rb"https?://[^\s\"'`)]+", source))
    assert urls <= {b"http://www.w3.org/2000/svg", b"https://YOUR-PARLEY-HOST/widget.js"}, urls


# -- the widget ----------------------------------------------------------------------------------


async def test_opens_minimizes_and_open_state_survives_reload(tenant: Tenant, new_page: Any) -> None:
    w = await new_page(tenant.widget_url)
    page = w.page
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    dialog = page.get_by_role("dialog", name="Chat")
    await expect(page.get_by_role("button", name="Open chat")).to_be_visible()
    await expect(dialog).to_be_hidden()

    await open_widget(page)
    await expect(page.get_by_role("button", name="Minimize chat")).to_have_attribute("aria-expanded", "true")
    await expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    await expect(dialog.get_by_role("log")).to_have_count(1)
    await expect(dialog.get_by_role("status")).to_have_count(1)

    await page.reload()
    await expect(dialog).to_be_visible()
    await expect(page.get_by_role("button", name="Minimize chat")).to_be_visible()

    await page.get_by_role("textbox", name="Message").press("Escape")  # Escape minimizes, focus goes back
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("button", name="Open chat")).to_be_focused()
    await page.keyboard.press("Enter")  # the launcher works from the keyboard
    await expect(dialog).to_be_visible()
    await page.get_by_role("button", name="Minimize chat").click()

    await page.reload()
    await expect(page.get_by_role("button", name="Open chat")).to_be_visible()
    await expect(dialog).to_be_hidden()
    base = tenant.server.base
    assert all(url.startswith((base, "data:")) for url in requests), requests
    assert not w.problems, w.problems


async def test_first_message_reaches_agent_who_types_and_replies(tenant: Tenant, agent: Agent, new_page: Any) -> None:
    w = await new_page(tenant.widget_url)
    page = w.page
    await open_widget(page)
    box = page.get_by_role("textbox", name="Message")
    await box.fill("Hello, is anyone there?")
    await box.press("Enter")  # Enter sends
    chat = (await agent.push("incoming_chat_thread"))["chat"]
    chat_id = chat["id"]
    assert [e["text"] for e in chat["thread"]["events"] if e["type"] == "message"] == ["Hello, is anyone there?"]
    customer = next(u for u in chat["users"] if u["type"] == "customer")
    assert customer["monitoring"]["page"]["url"] == tenant.widget_url
    assert customer["monitoring"]["page"]["title"] == await page.title()
    log = page.get_by_role("log")
    await expect(log).to_contain_text("Hello, is anyone there?")
    await expect(box).to_have_value("")

    # Sneak peek: the agent sees what the visitor is typing before it is sent.
    await box.press_sequentially("Do you ship to Norway?", delay=15)
    deadline = asyncio.get_running_loop().time() + 10
    peek = ""
    while peek != "Do you ship to Norway?" and asyncio.get_running_loop().time() < deadline:
        peek = (await agent.push("incoming_sneak_peek"))["sneak_peek"]["text"]
    assert peek == "Do you ship to Norway?"

    await agent.rtm.call("send_typing_indicator", {"chat_id": chat_id, "is_typing": True})
    status = page.get_by_role("status")
    await expect(status).to_have_text("Agent is typing…")
    await agent.say(chat_id, "Yes, we ship to all Nordic countries.")
    await expect(log).to_contain_text("Yes, we ship to all Nordic countries.")
    await expect(log).to_contain_text("Alice")
    await expect(status).not_to_have_text("Agent is typing…")
    assert not w.problems, w.problems


async def test_unread_count_while_minimized(tenant: Tenant, agent: Agent, new_page: Any) -> None:
    page = (await new_page(tenant.widget_url)).page
    chat_id = await start_chat(page, agent)
    await page.get_by_role("button", name="Minimize chat").click()
    await agent.say(chat_id, "Are you still there?")
    await expect(page.get_by_role("button", name="Open chat, 1 unread")).to_be_visible()
    await agent.say(chat_id, "Here is the tracking link.")
    await expect(page.get_by_role("button", name="Open chat, 2 unread")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("button", name="Open chat, 2 unread")).to_be_visible()
    await page.get_by_role("button", name="Open chat, 2 unread").click()
    await expect(page.get_by_role("log")).to_contain_text("Here is the tracking link.")
    await page.get_by_role("button", name="Minimize chat").click()
    await expect(page.get_by_role("button", name="Open chat", exact=True)).to_be_visible()


async def test_history_for_a_returning_visitor(tenant: Tenant, agent: Agent, new_page: Any) -> None:
    w = await new_page(tenant.widget_url)
    page = w.page
    chat_id = await start_chat(page, agent, "I ordered a tent last week")
    await agent.say(chat_id, "Let me check order 4711 for you")
    log = page.get_by_role("log")
    await expect(log).to_contain_text("Let me check order 4711 for you")

    await page.reload()
    await expect(log).to_contain_text("I ordered a tent last week")
    await expect(log).to_contain_text("Let me check order 4711 for you")

    # Another tab of the same browser is the same visitor, with the same chat.
    other = (await new_page(tenant.widget_url, context=page.context)).page
    await open_widget(other)
    await expect(other.get_by_role("log")).to_contain_text("Let me check order 4711 for you")
    await send(other, "Thanks!")
    event = await agent.push("incoming_event")
    assert event["chat_id"] == chat_id and event["event"]["text"] == "Thanks!"
    await expect(log).to_contain_text("Thanks!")  # the first tab hears its own visitor's message


async def test_message_sent_while_offline_is_pending_then_delivered_once(
    tmp_path: Path, http: aiohttp.ClientSession, new_page: Any
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PARLEY_TOKEN_RATE_PER_MIN": "0"}
    data = tmp_path / "data"
    srv = Server(data, "--port", str(port), env=env).start()
    restarted: Server | None = None
    try:
        tenant = await make_tenant(srv)
        agent = await Agent.connect(http, srv, tenant.license_id, tenant.email, tenant.password)
        w = await new_page(tenant.widget_url)
        page = w.page
        chat_id = await start_chat(page, agent, "before the outage")
        log = page.get_by_role("log")
        await expect(log.get_by_text(re.compile("^Pending|^Sending"))).to_have_count(0)
        await agent.close()

        srv.stop()
        status = page.get_by_role("status")
        await expect(status).to_contain_text(re.compile("reconnecting", re.I))
        await send(page, "sent while offline")
        await expect(log).to_contain_text("sent while offline")
        await expect(log.get_by_text(re.compile("^Pending"))).to_be_visible()

        await asyncio.sleep(1)
        restarted = Server(data, "--port", str(port), env=env).start()
        # The agent may write before the widget is back: that message must not be lost either.
        agent = await Agent.connect(http, restarted, tenant.license_id, tenant.email, tenant.password)
        await agent.say(chat_id, "while you were away")
        await expect(log.get_by_text(re.compile("^Pending"))).to_have_count(0, timeout=40_000)
        await expect(status).not_to_contain_text(re.compile("reconnecting", re.I))
        await expect(log).to_contain_text("while you were away")

        texts = await agent.texts(chat_id)
        assert sorted(texts) == sorted(["before the outage", "sent while offline", "while you were away"]), texts
        await send(page, "after the outage")
        assert (await agent.heard("after the outage"))["chat_id"] == chat_id
        await page.reload()
        await expect(log).to_contain_text("after the outage")
        assert (await agent.texts(chat_id)).count("sent while offline") == 1
        await agent.close()
    finally:
        for s in (srv, restarted):
            if s is not None and s.proc is not None and s.proc.poll() is None:
                s.stop()


async def test_unknown_licence_says_chat_is_unavailable(e2e_server: Server, new_page: Any) -> None:
    page = (await new_page(f"{e2e_server.base}/?license_id=987654")).page
    await page.get_by_role("button", name="Open chat").click()
    await expect(page.get_by_role("status")).to_contain_text("not available")


async def test_closed_thread_then_next_message_reopens(tenant: Tenant, agent: Agent, new_page: Any) -> None:
    page = (await new_page(tenant.widget_url)).page
    chat_id = await start_chat(page, agent)
    await agent.rtm.call("close_thread", {"chat_id": chat_id})
    await expect(page.get_by_text("Chat closed")).to_be_visible()
    await send(page, "One more question")
    reopened = (await agent.push("incoming_chat_thread"))["chat"]
    assert reopened["id"] == chat_id
    assert [e["text"] for e in reopened["thread"]["events"] if e["type"] == "message"] == ["One more question"]
    await expect(page.get_by_text("Chat closed")).to_be_hidden()
    await agent.say(chat_id, "Sure, go ahead")
    await expect(page.get_by_role("log")).to_contain_text("Sure, go ahead")


async def test_works_at_phone_width(tenant: Tenant, agent: Agent, new_page: Any) -> None:
    page = (await new_page(tenant.widget_url, viewport=PHONE)).page
    launcher = page.get_by_role("button", name="Open chat")
    await expect(launcher).to_be_in_viewport()
    chat_id = await start_chat(page, agent, "Hi from my phone")
    box = await page.get_by_role("dialog", name="Chat").bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["y"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"] + 0.5
    assert box["y"] + box["height"] <= PHONE["height"] + 0.5
    for control in (
        page.get_by_role("textbox", name="Message"),
        page.get_by_role("button", name="Send"),
        page.get_by_role("button", name="Minimize chat"),
    ):
        await expect(control).to_be_in_viewport()
    await agent.say(chat_id, "Hello phone user, this is a longer answer that has to wrap nicely on a narrow screen.")
    await expect(page.get_by_role("log")).to_contain_text("narrow screen")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.get_by_role("button", name="Minimize chat").click()
    await expect(page.get_by_role("dialog", name="Chat")).to_be_hidden()


async def test_markup_in_messages_is_shown_as_text(tenant: Tenant, agent: Agent, new_page: Any) -> None:
    w = await new_page(tenant.widget_url)
    page = w.page
    attack = "<img src=x onerror=alert(1)>"
    chat_id = await start_chat(page, agent, attack)
    reply = "<script>alert(2)</script><b>bold?</b>"
    await agent.say(chat_id, reply)
    dialog = page.get_by_role("dialog", name="Chat")
    log = page.get_by_role("log")
    await expect(log).to_contain_text(attack)
    await expect(log).to_contain_text(reply)
    await expect(dialog.locator("img, script, b")).to_have_count(0)
    await page.wait_for_timeout(300)
    assert w.dialogs == []


async def test_prechat_form_sends_name_and_email(
    e2e_server: Server, http: aiohttp.ClientSession, new_page: Any
) -> None:
    tenant = await make_tenant(e2e_server)
    tenant.set_license_setting("prechat_form", True)
    agent = await Agent.connect(http, e2e_server, tenant.license_id, tenant.email, tenant.password)
    try:
        page = (await new_page(tenant.widget_url)).page
        await open_widget(page)
        await expect(page.get_by_role("textbox", name="Message")).to_be_hidden()
        await page.get_by_role("textbox", name="Name").fill("Ada Lovelace")
        await page.get_by_role("textbox", name="Email").fill("ada@example.com")
        await page.get_by_role("button", name="Start chat").click()
        box = page.get_by_role("textbox", name="Message")
        await expect(box).to_be_focused()
        await box.fill("My order has not arrived")
        await box.press("Enter")
        chat = (await agent.push("incoming_chat_thread"))["chat"]
        customer = next(u for u in chat["users"] if u["type"] == "customer")
        assert (customer["name"], customer["email"]) == ("Ada Lovelace", "ada@example.com")
        await page.reload()  # a known visitor is not asked again
        await expect(page.get_by_role("textbox", name="Message")).to_be_visible()
        await expect(page.get_by_role("button", name="Start chat")).to_be_hidden()
    finally:
        await agent.close()


async def test_embedded_on_another_origin(tenant: Tenant, agent: Agent, browser: Any) -> None:
    """A shop on another origin embeds the widget with the documented one-line snippet."""
    base = tenant.server.base
    html = (
        "<!doctype html><html><head><title>Other shop</title></head><body><h1>Other shop</h1>"
        f'<script src="{base}/widget.js" data-license-id="{tenant.license_id}" async></script></body></html>'
    )

    async def shop_page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    shop_app = web.Application()
    shop_app.router.add_get("/", shop_page)
    runner = web.AppRunner(shop_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    shop_port = runner.addresses[0][1]
    context = await browser.new_context(viewport=DESKTOP)
    try:
        page = await context.new_page()
        await page.goto(f"http://localhost:{shop_port}/")  # another origin than the widget's 127.0.0.1
        chat_id = await start_chat(page, agent, "Hello from another site")
        await agent.say(chat_id, "Welcome!")
        await expect(page.get_by_role("log")).to_contain_text("Welcome!")
        await page.reload()  # identity kept in the shop's localStorage: same visitor, same history
        await expect(page.get_by_role("log")).to_contain_text("Hello from another site")
    finally:
        await context.close()
        await runner.cleanup()
