"""`parley admin` (SPEC §1, §9): JSON on stdout, a one-line error on stderr with a non-zero exit and
nothing created, and commands that work beside a running server on the same data dir."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import PARLEY, ROOT, AdminError, Rtm, Server, admin, agent_token, customer_token


def run(data_dir: Path | None, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`parley admin ARGS [--data-dir D]`, whatever its exit code."""
    extra = ["--data-dir", str(data_dir)] if data_dir is not None else []
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run(
        [*PARLEY, "admin", *args, *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **(env or {})},
        check=False,
        timeout=30,
    )


def refused(data_dir: Path, *args: str) -> str:
    """The command must fail: non-zero exit, nothing on stdout, one line on stderr. Answers that line."""
    done = run(data_dir, *args)
    assert done.returncode != 0, done.stdout
    assert done.stdout.strip() == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].strip()
    return lines[0]


def new_license(data_dir: Path, name: str = "Acme") -> int:
    made = admin(data_dir, "license", "create", "--name", name)
    return int(made["license_id"])


def unique_email(tag: str = "agent") -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


# -- licences -------------------------------------------------------------------------------------


def test_license_create(tmp_path: Path) -> None:
    done = run(tmp_path, "license", "create", "--name", "Acme")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    made = json.loads(lines[0])
    assert set(made) == {"license_id", "organization_id"}
    assert isinstance(made["license_id"], int) and made["license_id"] > 0
    assert str(uuid.UUID(made["organization_id"])) == made["organization_id"].lower()


def test_licences_are_distinct(tmp_path: Path) -> None:
    a = admin(tmp_path, "license", "create", "--name", "A")
    b = admin(tmp_path, "license", "create", "--name", "B")
    assert a["license_id"] != b["license_id"]
    assert a["organization_id"] != b["organization_id"]


def test_new_licence_has_no_agents(tmp_path: Path) -> None:
    lic = new_license(tmp_path)
    assert admin(tmp_path, "agent", "list", "--license", str(lic)) == []


def test_data_dir_from_environment(tmp_path: Path) -> None:
    data = tmp_path / "env-data"
    done = run(None, "license", "create", "--name", "Env", env={"PARLEY_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr
    lic = json.loads(done.stdout)["license_id"]
    assert admin(data, "agent", "list", "--license", str(lic)) == []


# -- groups -------------------------------------------------------------------------------------


def test_group_create(tmp_path: Path) -> None:
    lic = new_license(tmp_path)
    first = admin(tmp_path, "group", "create", "--license", str(lic), "--name", "Sales")
    second = admin(tmp_path, "group", "create", "--license", str(lic), "--name", "Support")
    assert set(first) == {"id"}
    assert isinstance(first["id"], int) and isinstance(second["id"], int)
    assert first["id"] != second["id"]
    assert 0 not in (first["id"], second["id"])  # group 0 is "General", made with the licence


def test_group_create_unknown_licence(tmp_path: Path) -> None:
    new_license(tmp_path)
    refused(tmp_path, "group", "create", "--license", "999", "--name", "Ghost")
    # nothing was created: licence 999 still does not exist
    refused(tmp_path, "agent", "list", "--license", "999")


# -- agents -------------------------------------------------------------------------------------


def test_agent_create_and_list(tmp_path: Path) -> None:
    lic = str(new_license(tmp_path))
    g1 = admin(tmp_path, "group", "create", "--license", lic, "--name", "Sales")["id"]
    g2 = admin(tmp_path, "group", "create", "--license", lic, "--name", "Support")["id"]
    email = unique_email()
    made = admin(
        tmp_path,
        "agent",
        "create",
        "--license",
        lic,
        "--email",
        email,
        "--name",
        "Ann Agent",
        "--password",
        "correct horse battery",
        "--group",
        str(g1),
        "--group",
        str(g2),
        "--max-chats",
        "3",
    )
    assert set(made) == {"agent_id"}
    assert isinstance(made["agent_id"], str) and made["agent_id"]
    plain = admin(
        tmp_path,
        "agent",
        "create",
        "--license",
        lic,
        "--email",
        unique_email("plain"),
        "--name",
        "Bob",
        "--password",
        "another password",
    )

    listed = admin(tmp_path, "agent", "list", "--license", lic)
    assert isinstance(listed, list) and len(listed) == 2
    by_id = {a["agent_id"]: a for a in listed}
    ann, bob = by_id[made["agent_id"]], by_id[plain["agent_id"]]
    for agent in listed:
        assert {"agent_id", "email", "name", "groups", "routing_status"} <= set(agent)
        assert agent["routing_status"] == "accepting_chats"
        assert 0 in agent["groups"]
    assert ann["email"] == email
    assert ann["name"] == "Ann Agent"
    assert sorted(ann["groups"]) == sorted({0, g1, g2})
    assert bob["groups"] == [0]
    assert bob["name"] == "Bob"


def test_agent_list_prints_one_json_array(tmp_path: Path) -> None:
    lic = str(new_license(tmp_path))
    admin(
        tmp_path,
        "agent",
        "create",
        "--license",
        lic,
        "--email",
        unique_email(),
        "--name",
        "A",
        "--password",
        "password-1",
    )
    done = run(tmp_path, "agent", "list", "--license", lic)
    assert done.returncode == 0
    assert isinstance(json.loads(done.stdout), list)


def test_agent_create_unknown_licence(tmp_path: Path) -> None:
    new_license(tmp_path)
    refused(
        tmp_path,
        "agent",
        "create",
        "--license",
        "999",
        "--email",
        unique_email(),
        "--name",
        "X",
        "--password",
        "password-1",
    )
    refused(tmp_path, "agent", "list", "--license", "999")


def test_agent_create_unknown_group_creates_nothing(tmp_path: Path) -> None:
    lic = str(new_license(tmp_path))
    g = admin(tmp_path, "group", "create", "--license", lic, "--name", "Sales")["id"]
    email = unique_email()
    refused(
        tmp_path,
        "agent",
        "create",
        "--license",
        lic,
        "--email",
        email,
        "--name",
        "X",
        "--password",
        "password-1",
        "--group",
        str(g),
        "--group",
        str(g + 100),
    )
    assert admin(tmp_path, "agent", "list", "--license", lic) == []
    # no half-made agent blocks the address: the same e-mail with good groups now works
    admin(
        tmp_path,
        "agent",
        "create",
        "--license",
        lic,
        "--email",
        email,
        "--name",
        "X",
        "--password",
        "password-1",
        "--group",
        str(g),
    )
    assert [a["email"] for a in admin(tmp_path, "agent", "list", "--license", lic)] == [email]


def test_group_of_another_licence_is_unknown(tmp_path: Path) -> None:
    a = str(new_license(tmp_path, "A"))
    b = str(new_license(tmp_path, "B"))
    admin(tmp_path, "group", "create", "--license", a, "--name", "Only in A")
    admin(tmp_path, "group", "create", "--license", a, "--name", "Also only in A")
    refused(
        tmp_path,
        "agent",
        "create",
        "--license",
        b,
        "--email",
        unique_email(),
        "--name",
        "X",
        "--password",
        "password-1",
        "--group",
        "2",
    )
    assert admin(tmp_path, "agent", "list", "--license", b) == []


def test_duplicate_email_fails(tmp_path: Path) -> None:
    lic = str(new_license(tmp_path))
    email = unique_email()
    first = admin(
        tmp_path, "agent", "create", "--license", lic, "--email", email, "--name", "One", "--password", "password-1"
    )
    refused(
        tmp_path, "agent", "create", "--license", lic, "--email", email, "--name", "Two", "--password", "password-2"
    )
    listed = admin(tmp_path, "agent", "list", "--license", lic)
    assert [(a["agent_id"], a["name"]) for a in listed] == [(first["agent_id"], "One")]


def test_same_email_in_another_licence_is_fine(tmp_path: Path) -> None:
    a = str(new_license(tmp_path, "A"))
    b = str(new_license(tmp_path, "B"))
    email = unique_email()
    admin(tmp_path, "agent", "create", "--license", a, "--email", email, "--name", "A", "--password", "password-1")
    admin(tmp_path, "agent", "create", "--license", b, "--email", email, "--name", "B", "--password", "password-2")
    assert [x["name"] for x in admin(tmp_path, "agent", "list", "--license", b)] == ["B"]


def test_agent_list_unknown_licence(tmp_path: Path) -> None:
    new_license(tmp_path)
    with pytest.raises(AdminError) as caught:
        admin(tmp_path, "agent", "list", "--license", "4242")
    assert caught.value.code != 0
    assert "\n" not in caught.value.stderr and caught.value.stderr


# -- beside a running server -----------------------------------------------------------------------


async def test_licence_made_beside_a_running_server_is_usable(server: Server, http: aiohttp.ClientSession) -> None:
    made = admin(server.data_dir, "license", "create", "--name", "Beside")
    lic = made["license_id"]
    token = await customer_token(http, server.base, lic)
    assert token["license_id"] == lic
    rtm = await Rtm.connect(http, server.ws_base, license_id=lic)
    login = await rtm.login(token["access_token"])
    assert login["customer_id"] == token["customer_id"]
    chat = (await rtm.call("start_chat", {}))["chat"]
    assert chat["scopes"] == {"groups": [0]}
    await rtm.close()
    # and it is a different tenant from licence 1
    async with http.post(
        f"{server.base}/v3.0/customer/action/get_chats_summary?license_id=1",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        json={},
    ) as resp:
        assert resp.status == 401


async def test_licence_unknown_then_created_while_running(server: Server, http: aiohttp.ClientSession) -> None:
    # the server must not remember "no such licence" for a licence an operator then creates
    existing = admin(server.data_dir, "license", "create", "--name", "Probe")["license_id"]
    upcoming = existing + 1
    async with http.post(f"{server.base}/v3.0/customer/token", json={"license_id": upcoming}) as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["type"] == "license_not_found"
    made = admin(server.data_dir, "license", "create", "--name", "Late")["license_id"]
    token = await customer_token(http, server.base, made)
    assert token["license_id"] == made


async def test_group_and_agent_made_beside_a_running_server(server: Server, http: aiohttp.ClientSession) -> None:
    lic = admin(server.data_dir, "license", "create", "--name", "Staffed")["license_id"]
    group = admin(server.data_dir, "group", "create", "--license", str(lic), "--name", "Sales")["id"]
    email = unique_email()
    made = admin(
        server.data_dir,
        "agent",
        "create",
        "--license",
        str(lic),
        "--email",
        email,
        "--name",
        "Sal",
        "--password",
        "sales-password",
        "--group",
        str(group),
    )
    token = await agent_token(http, server.base, email, "sales-password", lic)
    assert token["agent_id"] == made["agent_id"]

    customer = await customer_token(http, server.base, lic)
    rtm = await Rtm.connect(http, server.ws_base, license_id=lic)
    await rtm.login(customer["access_token"])
    chat = (await rtm.call("start_chat", {"chat": {"scopes": {"groups": [group]}}}))["chat"]
    assert chat["scopes"] == {"groups": [group]}
    error = await rtm.error("start_chat", {"chat": {"scopes": {"groups": [group + 50]}}})
    assert error["type"] == "group_not_found"
    await rtm.close()
    listed = admin(server.data_dir, "agent", "list", "--license", str(lic))
    assert [a["agent_id"] for a in listed] == [made["agent_id"]]


# -- export -------------------------------------------------------------------------------------------


async def make_history(http: aiohttp.ClientSession, srv: Server, lic: int) -> dict[str, dict[str, Any]]:
    """Two customers' chats sent over RTM; answers chat id -> {thread id -> [sent events]}."""
    sent: dict[str, dict[str, Any]] = {}
    for n in range(2):
        token = (await customer_token(http, srv.base, lic))["access_token"]
        rtm = await Rtm.connect(http, srv.ws_base, license_id=lic)
        await rtm.login(token)
        started = (
            await rtm.call(
                "start_chat",
                {
                    "chat": {
                        "properties": {"ns": {"n": n}},
                        "thread": {"events": [{"type": "message", "text": f"hello {n}"}]},
                    }
                },
            )
        )["chat"]
        chat_id, first_thread = started["id"], started["thread"]["id"]
        threads: dict[str, list[dict[str, Any]]] = {first_thread: list(started["thread"]["events"])}
        events = [
            {"type": "message", "text": f"ünïcødé 🦜 {n}", "custom_id": f"c{n}"},
            {"type": "custom", "content": {"kind": "cart", "items": [1, 2]}},
            {"type": "filled_form", "fields": [{"type": "name", "name": "name", "label": "Name", "value": "Ann"}]},
        ]
        for event in events:
            done = await rtm.call("send_event", {"chat_id": chat_id, "event": event})
            threads.setdefault(done["thread_id"], []).append(done["event"])
        if n == 1:  # a second thread
            await rtm.call("close_thread", {"chat_id": chat_id})
            done = await rtm.call("send_event", {"chat_id": chat_id, "event": {"type": "message", "text": "back"}})
            threads.setdefault(done["thread_id"], []).append(done["event"])
        sent[chat_id] = threads
        await rtm.close()
    return sent


def exported(data_dir: Path, lic: int, *extra: str) -> list[dict[str, Any]]:
    done = run(data_dir, "export", "--license", str(lic), *extra)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    rows = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in rows)
    return rows


async def test_export_loses_nothing(server: Server, http: aiohttp.ClientSession) -> None:
    lic = admin(server.data_dir, "license", "create", "--name", "Exported")["license_id"]
    sent = await make_history(http, server, lic)
    rows = exported(server.data_dir, lic)  # while the server runs
    assert sorted(r["id"] for r in rows) == sorted(sent)
    for row in rows:
        threads = row["threads"]
        assert [t["id"] for t in threads] == list(sent[row["id"]])  # oldest first
        for thread in threads:
            expected = sent[row["id"]][thread["id"]]
            got = {e["id"]: e for e in thread["events"]}
            for event in expected:
                assert event["id"] in got, f"event {event['id']} missing from the export"
                kept = got[event["id"]]
                for field in ("type", "order", "author_id", "created_at", "text", "content", "fields", "custom_id"):
                    assert kept.get(field) == event.get(field), (field, kept, event)
            customer_events = [e for e in thread["events"] if e["type"] != "system_message"]
            assert len(customer_events) == len(expected)
            orders = [e["order"] for e in thread["events"]]
            assert orders == sorted(orders)


async def test_export_since(server: Server, http: aiohttp.ClientSession) -> None:
    lic = admin(server.data_dir, "license", "create", "--name", "Since")["license_id"]
    day_before = datetime.now(UTC).date()
    sent = await make_history(http, server, lic)
    day_after = datetime.now(UTC).date()
    assert sorted(r["id"] for r in exported(server.data_dir, lic, "--since", day_before.isoformat())) == sorted(sent)
    assert sorted(r["id"] for r in exported(server.data_dir, lic, "--since", "2000-01-01")) == sorted(sent)
    tomorrow = (day_after + timedelta(days=1)).isoformat()
    assert exported(server.data_dir, lic, "--since", tomorrow) == []


def test_export_of_an_empty_licence(tmp_path: Path) -> None:
    lic = new_license(tmp_path)
    assert exported(tmp_path, lic) == []


def test_export_unknown_licence(tmp_path: Path) -> None:
    new_license(tmp_path)
    refused(tmp_path, "export", "--license", "999")


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "01/02/2026"])
def test_export_bad_since(tmp_path: Path, since: str) -> None:
    lic = new_license(tmp_path)
    refused(tmp_path, "export", "--license", str(lic), "--since", since)


async def test_admin_agent_serves_chats_and_routing_status_persists(
    server: Server, http: aiohttp.ClientSession
) -> None:
    lic = admin(server.data_dir, "license", "create", "--name", "Routing")["license_id"]
    email = unique_email()
    made = admin(
        server.data_dir,
        "agent",
        "create",
        "--license",
        str(lic),
        "--email",
        email,
        "--name",
        "Rita",
        "--password",
        "rita-password",
    )
    token = (await agent_token(http, server.base, email, "rita-password", lic))["access_token"]
    agent = await Rtm.connect(http, server.ws_base, side="agent", license_id=lic)
    login = await agent.login(token)
    assert login["my_profile"]["routing_status"] == "accepting_chats"

    # the running server routes a new chat of that licence to the agent the CLI made
    customer = await customer_token(http, server.base, lic)
    rtm = await Rtm.connect(http, server.ws_base, license_id=lic)
    await rtm.login(customer["access_token"])
    chat = (await rtm.call("start_chat", {}))["chat"]
    routed = await agent.push("incoming_chat_thread")
    assert routed["payload"]["chat"]["id"] == chat["id"]
    added = await rtm.push("chat_user_added")
    assert added["payload"]["user"]["id"] == made["agent_id"]
    await rtm.close()

    await agent.call("set_routing_status", {"status": "not_accepting_chats"})
    await agent.close()
    listed = admin(server.data_dir, "agent", "list", "--license", str(lic))
    assert [a["routing_status"] for a in listed] == ["not_accepting_chats"]
    again = await Rtm.connect(http, server.ws_base, side="agent", license_id=lic)
    assert (await again.login(token))["my_profile"]["routing_status"] == "not_accepting_chats"
    await again.close()
