"""`parley serve` and `parley admin` with `--database-url postgresql://…` (SPEC §1, §9, §12 Cluster):
state survives a restart because it lives in PostgreSQL, the signing key included, and a node
that cannot reach its database exits non-zero naming it. Each module run uses a database of its
own, dropped at the end; skipped when no PostgreSQL answers at PARLEY_TEST_DATABASE_URL."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import PARLEY, ROOT, AdminError, Rtm, Server, admin, customer_token

asyncpg = pytest.importorskip("asyncpg")

from tests.pg import ADMIN_URL, create_database, drop_database, with_database  # noqa: E402


@pytest.fixture(scope="module")
async def database_url() -> AsyncIterator[str]:
    try:
        name = await create_database("parley_it")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}: {exc}")
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        await drop_database(name)


async def test_chats_survive_a_restart(tmp_path: Path, database_url: str, http: aiohttp.ClientSession) -> None:
    data = tmp_path / "node"
    first = Server(data, "--demo", "--database-url", database_url).start()
    try:
        async with http.get(f"{first.base}/healthz") as resp:
            assert resp.status == 200 and (await resp.json()) == {"status": "ok"}
        token = await customer_token(http, first.base)
        rtm = await Rtm.connect(http, first.ws_base)
        await rtm.login(token["access_token"])
        chat = (await rtm.call("start_chat", {}))["chat"]
        sent = [
            await rtm.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": text}})
            for text in ("hello from postgres", "second message")
        ]
        await rtm.close()
    finally:
        assert first.stop() == 0
    # with --database-url, the data dir holds no database
    assert not (data / "parley.db").exists()

    second = Server(data, "--demo", "--database-url", database_url).start()
    try:
        # the same token still works: the signing key lives in the database too
        rtm = await Rtm.connect(http, second.ws_base)
        login = await rtm.login(token["access_token"])
        assert login["customer_id"] == token["customer_id"]
        assert login["total_chats"] == 1
        thread_id = chat["thread"]["id"]
        got = await rtm.call("get_chat_threads", {"chat_id": chat["id"], "thread_ids": [thread_id]})
        [thread] = got["chat"]["threads"]
        texts = [e["text"] for e in thread["events"] if e["type"] == "message"]
        assert texts == ["hello from postgres", "second message"]
        assert [e["id"] for e in thread["events"][-2:]] == [s["event"]["id"] for s in sent]
        # and the chat goes on where it was
        more = await rtm.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": "after"}})
        assert more["thread_id"] == thread_id
        await rtm.close()
    finally:
        assert second.stop() == 0


async def test_admin_uses_the_database(tmp_path: Path, database_url: str, http: aiohttp.ClientSession) -> None:
    """`parley admin … --database-url` works while a node runs on the same database, and the node
    sees what it wrote."""
    node = Server(tmp_path / "node", "--demo", "--database-url", database_url).start()

    def run(*args: str, url: str = database_url) -> Any:
        return admin(tmp_path / "admin", *args, "--database-url", url)

    try:
        made = run("license", "create", "--name", "Second")
        assert made["license_id"] > 1 and made["organization_id"]
        lic = str(made["license_id"])
        assert run("group", "create", "--license", lic, "--name", "Sales") == {"id": 1}
        agent = run(
            "agent", "create", "--license", lic, "--email", "a@x.io", "--name", "A", "--password", "pw-123456",
            "--group", "1",
        )  # fmt: skip
        agents = run("agent", "list", "--license", lic)
        assert [(a["agent_id"], a["email"], a["groups"]) for a in agents] == [(agent["agent_id"], "a@x.io", [0, 1])]
        # the running node serves the licence the CLI just made
        token = await customer_token(http, node.base, license_id=made["license_id"])
        assert token["access_token"]
        assert isinstance(run("export", "--license", "1"), list)
        # a database that does not exist: a one-line error naming it
        missing = with_database(database_url, f"parley_missing_{secrets.token_hex(4)}")
        with pytest.raises(AdminError) as info:
            run("agent", "list", "--license", "1", url=missing)
        assert missing in info.value.stderr and "\n" not in info.value.stderr
    finally:
        assert node.stop() == 0
    assert not (tmp_path / "admin" / "parley.db").exists()


def test_unreachable_database_exits_naming_it(tmp_path: Path) -> None:
    url = "postgresql://127.0.0.1:1/parley_nowhere"
    done = subprocess.run(
        [*PARLEY, "serve", "--port", "0", "--data-dir", str(tmp_path), "--database-url", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "listening on" not in done.stdout
    assert url in done.stderr
