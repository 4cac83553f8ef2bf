"""The agent console in a real browser (SPEC §10), opposite a visitor in the widget."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Agent, Tenant
from tests.support import admin

pytestmark = pytest.mark.e2e


def expect(target: Any) -> Any:
    from playwright.async_api import expect as pw_expect

    return pw_expect(target)


async def log_in(page: Any, tenant: Tenant) -> None:
    await page.get_by_role("textbox", name="Email").fill(tenant.email)
    await page.get_by_role("textbox", name="Password").fill(tenant.password)
    await expect(page.get_by_role("textbox", name="Licence")).to_have_value(str(tenant.license_id))
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("switch", name="Accepting chats")).to_be_visible()
    await expect(page.get_by_role("status")).to_have_text("Online")


async def routing_status(tenant: Tenant) -> str:
    agents = await asyncio.to_thread(
        admin, tenant.server.data_dir, "agent", "list", "--license", str(tenant.license_id)
    )
    return str(next(a["routing_status"] for a in agents if a["email"] == tenant.email))


async def visitor_says(new_page: Any, tenant: Tenant, text: str) -> Any:
    page = (await new_page(tenant.widget_url)).page
    await page.get_by_role("button", name="Open chat").click()
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")
    await expect(page.get_by_role("log")).to_contain_text(text)
    await expect(page.get_by_role("log").get_by_text(re.compile("^(Sending|Pending)"))).to_have_count(0)
    return page


async def test_login_form_defaults_and_errors(tenant: Tenant, new_page: Any) -> None:
    page = (await new_page(f"{tenant.server.base}/agent/")).page
    await expect(page.get_by_role("textbox", name="Licence")).to_have_value("1")
    page = (await new_page(tenant.console_url)).page
    await expect(page.get_by_role("textbox", name="Email")).to_be_focused()
    await page.get_by_role("textbox", name="Email").fill(tenant.email)
    await page.get_by_role("textbox", name="Password").fill("not the password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert").filter(has_text="Wrong email or password")).to_be_visible()
    await expect(page.get_by_role("switch", name="Accepting chats")).to_be_hidden()


async def test_queue_accept_reply_note_and_close(tenant: Tenant, new_page: Any) -> None:
    console_w = await new_page(tenant.console_url)
    console = console_w.page
    await log_in(console, tenant)
    switch = console.get_by_role("switch", name="Accepting chats")
    await expect(switch).to_have_attribute("aria-checked", "true")
    await switch.click()  # not accepting: new chats wait in the queue
    await expect(switch).to_have_attribute("aria-checked", "false")
    assert await routing_status(tenant) == "not_accepting_chats"

    visitor = await visitor_says(new_page, tenant, "Where is my parcel?")
    queue = console.get_by_role("list", name="Queue")
    entry = queue.get_by_role("listitem").filter(has_text="Where is my parcel?")
    await expect(entry).to_be_visible()
    await entry.get_by_role("button", name="Accept").click()
    mine = console.get_by_role("list", name="My chats")
    await expect(mine.get_by_role("listitem").filter(has_text="Where is my parcel?")).to_be_visible()
    await expect(queue.get_by_role("listitem")).to_have_count(0)
    log = console.get_by_role("log")
    await expect(log).to_contain_text("Where is my parcel?")

    # The visitor's details and page.
    details = console.get_by_role("complementary", name="Visitor details")
    await expect(details).to_contain_text(tenant.widget_url)
    await expect(details).to_contain_text(await visitor.title())

    # Sneak peek of what the visitor types; the agent's typing shows in the widget.
    await visitor.get_by_role("textbox", name="Message").press_sequentially("order 4711", delay=20)
    await expect(console.get_by_text("is typing: order 4711")).to_be_visible()
    box = console.get_by_role("textbox", name="Message")
    await box.press_sequentially("It left our", delay=20)
    await expect(visitor.get_by_role("status")).to_have_text("Agent is typing…")
    await box.fill("It left our warehouse today.")
    await console.get_by_role("button", name="Send").click()
    await expect(visitor.get_by_role("log")).to_contain_text("It left our warehouse today.")
    await expect(visitor.get_by_role("status")).not_to_have_text("Agent is typing…")

    await box.fill("Customer asked twice, check the courier")
    await console.get_by_role("button", name="Internal note").click()
    await expect(log).to_contain_text("Customer asked twice, check the courier")
    await visitor.get_by_role("textbox", name="Message").fill("")
    await visitor.get_by_role("textbox", name="Message").fill("Thank you!")
    await visitor.get_by_role("button", name="Send").click()
    await expect(log).to_contain_text("Thank you!")
    await visitor.reload()
    await expect(visitor.get_by_role("log")).to_contain_text("Thank you!")
    await expect(visitor.get_by_role("log")).not_to_contain_text("check the courier")

    await console.reload()  # the session survives a reload of the console
    await expect(mine.get_by_role("listitem").filter(has_text="Thank you!")).to_be_visible()
    await console.get_by_role("button", name="Close chat").click()
    await expect(visitor.get_by_text("Chat closed")).to_be_visible()
    await expect(console.get_by_role("button", name="Send")).to_be_disabled()

    await switch.click()
    await expect(switch).to_have_attribute("aria-checked", "true")
    assert await routing_status(tenant) == "accepting_chats"
    assert not console_w.problems, console_w.problems


async def test_transfer_to_another_agent(tenant: Tenant, http: aiohttp.ClientSession, new_page: Any) -> None:
    console = (await new_page(tenant.console_url)).page
    await log_in(console, tenant)
    visitor = await visitor_says(new_page, tenant, "Can I talk to billing?")
    mine = console.get_by_role("list", name="My chats")
    await expect(mine.get_by_role("listitem").filter(has_text="Can I talk to billing?")).to_be_visible()

    bob_id, bob_email, bob_password = await tenant.add_agent("Bob")
    bob = await Agent.connect(http, tenant.server, tenant.license_id, bob_email, bob_password)
    try:
        await console.get_by_role("combobox", name="Transfer to").select_option(label="All agents (group 0)")
        await console.get_by_role("button", name="Transfer").click()
        chat = (await bob.push("incoming_chat_thread"))["chat"]
        assert any(u["id"] == bob_id for u in chat["users"])
        await expect(mine.get_by_role("listitem")).to_have_count(0)
        await bob.say(chat["id"], "Billing here, hello!")
        await expect(visitor.get_by_role("log")).to_contain_text("Billing here, hello!")
    finally:
        await bob.close()
