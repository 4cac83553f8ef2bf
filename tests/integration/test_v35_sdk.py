"""The real LiveChat Python SDK (PyPI lc-sdk-python 0.4.2) against `parley serve --tls-cert/--tls-key`.

The SDK builds `wss://HOST/v3.x/…` and `https://HOST/v3.x/…` with a fixed scheme and accepts a
self-signed certificate (RTM: CERT_NONE; Web: verify=False), so the server runs TLS with a
certificate made here. The customer side is the SDK, unpatched; the agent is parley's own v3.0
RTM client. @livechat/customer-sdk is not driven: its host is fixed to *.livechatinc.com.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import PARLEY, ROOT, Rtm, Server

livechat = pytest.importorskip("livechat", reason="the `test` extra installs lc-sdk-python")
from livechat.customer.rtm.base import CustomerRTM  # noqa: E402
from livechat.customer.web.base import CustomerWeb  # noqa: E402
from loguru import logger  # noqa: E402

logger.disable("livechat")  # the SDK logs every frame at INFO


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class TlsSite:
    server: Server
    host: str
    """HOST:PORT, what the SDK calls `base_url`."""
    agent_email: str
    agent_password: str


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(directory)
    srv = Server(directory / "data", "--demo", "--tls-cert", str(cert), "--tls-key", str(key)).start()
    try:
        line = next(line for line in srv.stdout_lines if line.startswith("agent login:"))
        email, password = line.split()[2:4]
        yield TlsSite(srv, srv.base.removeprefix("https://"), email, password)
    finally:
        srv.stop()


@pytest.fixture
async def insecure() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        yield session


def test_serve_prints_https_and_refuses_half_a_tls_setup(tls_site: TlsSite, tmp_path: Path) -> None:
    assert tls_site.server.base.startswith("https://127.0.0.1:")
    assert any(line.startswith("listening on https://") for line in tls_site.server.stdout_lines)
    assert any(line.startswith("agent console: https://") for line in tls_site.server.stdout_lines)
    half = subprocess.run(
        [*PARLEY, "serve", "--port", "0", "--data-dir", str(tmp_path), "--tls-cert", "cert.pem"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert half.returncode != 0 and "--tls-key" in half.stderr
    missing = subprocess.run(
        [*PARLEY, "serve", "--port", "0", "--data-dir", str(tmp_path), "--tls-cert", "no.pem", "--tls-key", "no.pem"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1


async def test_plain_http_is_not_served_on_the_tls_port(tls_site: TlsSite) -> None:
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://{tls_site.host}/healthz") as resp:
                await resp.read()


def _wait_for_push(rtm: Any, found: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The SDK keeps every frame in `ws.messages` (newest first); the first push that `found` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in list(rtm.ws.messages):
            if message.get("type") == "push" and found(message):
                return message
        time.sleep(0.05)
    raise AssertionError(f"no such push; got {rtm.ws.messages}")


async def test_the_real_python_sdk_chats_with_an_agent(tls_site: TlsSite, insecure: aiohttp.ClientSession) -> None:
    base = tls_site.server.base
    async with insecure.post(f"{base}/v3.0/customer/token", json={"license_id": 1}) as resp:
        token = await resp.json()
    async with insecure.get(f"{base}/v3.0/customer/config?license_id=1") as resp:
        org = (await resp.json())["organization_id"]
    body = {"license_id": 1, "email": tls_site.agent_email, "password": tls_site.agent_password}
    async with insecure.post(f"{base}/v3.0/agent/token", json=body) as resp:
        agent_token = await resp.json()
    agent = await Rtm.connect(insecure, tls_site.server.ws_base, side="agent")
    await agent.login(agent_token["access_token"])

    bearer = f"Bearer {token['access_token']}"
    rtm = CustomerRTM.get_client(version="3.5", base_url=tls_site.host, organization_id=org)

    def customer_side() -> dict[str, Any]:
        rtm.open_connection(response_timeout=10)
        login = rtm.login(token=bearer)
        hello = {"type": "message", "text": "hello", "visibility": "all"}
        started = rtm.start_chat(chat={"thread": {"events": [hello]}})
        chat_id = started.payload["chat_id"]
        sent = rtm.send_event(chat_id=chat_id, event={"type": "message", "text": "second", "visibility": "all"})
        return {
            "login": login.payload,
            "started": started.payload,
            "sent": sent.payload,
            "listed": rtm.list_chats().payload,
            "got": rtm.get_chat(chat_id=chat_id).payload,
        }

    try:
        seen = await asyncio.to_thread(customer_side)
        assert seen["login"]["customer_id"] == token["customer_id"]
        assert isinstance(seen["login"]["customer"]["statistics"], dict)
        chat_id = seen["started"]["chat_id"]
        assert set(seen["started"]) == {"chat_id", "thread_id", "event_ids"}
        assert set(seen["sent"]) == {"event_id"}
        assert [c["id"] for c in seen["listed"]["chats_summary"]] == [chat_id]
        texts = [e["text"] for e in seen["got"]["thread"]["events"] if e["type"] == "message"]
        assert texts == ["hello", "second"]

        # The agent (v3.0) gets the chat by routing and hears the SDK's second message.
        incoming = (await agent.push("incoming_chat_thread", timeout=10))["payload"]
        assert incoming["chat"]["id"] == chat_id
        while True:
            heard = (await agent.push("incoming_event", timeout=10))["payload"]
            if heard["event"].get("text") == "second":
                break
        assert heard["event"]["id"] == seen["sent"]["event_id"]
        await agent.call("send_event", {"chat_id": chat_id, "event": {"type": "message", "text": "hi, Ann here"}})

        reply = await asyncio.to_thread(
            _wait_for_push,
            rtm,
            lambda m: m["action"] == "incoming_event" and m["payload"]["event"].get("text") == "hi, Ann here",
        )
        assert reply["payload"]["chat_id"] == chat_id
        assert reply["payload"]["event"]["visibility"] == "all"
        assert "request_id" not in reply
        # The SDK's own requests were echoed with their request_id (what @livechat/customer-sdk waits for).
        echoed = await asyncio.to_thread(
            _wait_for_push, rtm, lambda m: m["action"] == "incoming_chat" and "request_id" in m
        )
        assert echoed["payload"]["chat"]["id"] == chat_id

        def web_side() -> tuple[int, Any, int, Any]:
            web = CustomerWeb.get_client(
                access_token=bearer, version="3.6", base_url=tls_site.host, organization_id=org, verify=False
            )
            sent = web.send_event(chat_id=chat_id, event={"type": "message", "text": "over the web"})
            listed = web.list_chats()
            return sent.status_code, sent.json(), listed.status_code, listed.json()

        sent_status, sent_body, list_status, listed = await asyncio.to_thread(web_side)
        assert sent_status == 200 and "event_id" in sent_body
        assert list_status == 200 and listed["total_chats"] == 1
        while True:
            heard = (await agent.push("incoming_event", timeout=10))["payload"]
            if heard["event"].get("text") == "over the web":
                break
    finally:
        await asyncio.to_thread(rtm.close_connection)
        await agent.close()
