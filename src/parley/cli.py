"""`parley serve` and `parley admin …` (SPEC §1, §9)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parley.config import Settings
from parley.protocol.errors import ApiError, ErrorType
from parley.service import views


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"PARLEY_{name.upper()}", default)


def _flag_true(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def _add_store_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=Path(_env("data_dir", "./parley-data")))
    p.add_argument("--database-url", default=_env("database_url", None))
    p.add_argument("--broker-url", default=_env("broker_url", None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="A self-hosted live-chat server.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=_env("host", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(_env("port", 8080)))
    _add_store_flags(serve)
    serve.add_argument("--demo", action="store_true", default=_flag_true(_env("demo", "")))
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=float(_env("rate_limit", 20.0)),
        help="requests per second per connection or token (0 = off)",
    )
    serve.add_argument(
        "--token-rate-per-min",
        type=int,
        default=int(_env("token_rate_per_min", 60)),
        help="new customer tokens per client IP per minute (0 = off)",
    )
    serve.add_argument("--log-level", default=_env("log_level", "INFO"))
    serve.add_argument(
        "--tls-cert", type=Path, default=_env("tls_cert", None), help="PEM certificate (chain): serve https and wss"
    )
    serve.add_argument("--tls-key", type=Path, default=_env("tls_key", None), help="PEM private key of --tls-cert")

    admin = sub.add_parser("admin", help="operator commands (JSON on stdout)")
    nouns = admin.add_subparsers(dest="noun", required=True)

    lic = nouns.add_parser("license").add_subparsers(dest="verb", required=True)
    p = lic.add_parser("create")
    p.add_argument("--name", required=True)
    _add_store_flags(p)

    p = lic.add_parser("set", help="change a licence's settings (they reach running servers within 5 s)")
    p.add_argument("--license", type=int, required=True)
    p.add_argument("--prechat-form", choices=["on", "off"], help="ask visitors for name and e-mail first")
    p.add_argument("--public-agent-email", choices=["on", "off"], help="show agents' e-mails to visitors")
    p.add_argument("--max-chats-per-agent", type=int, help="default concurrent chats per agent")
    _add_store_flags(p)

    grp = nouns.add_parser("group").add_subparsers(dest="verb", required=True)
    p = grp.add_parser("create")
    p.add_argument("--license", type=int, required=True)
    p.add_argument("--name", required=True)
    _add_store_flags(p)

    agent = nouns.add_parser("agent").add_subparsers(dest="verb", required=True)
    p = agent.add_parser("create")
    p.add_argument("--license", type=int, required=True)
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--group", type=int, action="append", default=[])
    p.add_argument("--max-chats", type=int, default=None)
    _add_store_flags(p)
    p = agent.add_parser("list")
    p.add_argument("--license", type=int, required=True)
    _add_store_flags(p)

    p = nouns.add_parser("export")
    p.add_argument("--license", type=int, required=True)
    p.add_argument("--since", default=None, help="YYYY-MM-DD: only chats with activity on or after that day")
    _add_store_flags(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from parley.serve import run

        if (args.tls_cert is None) != (args.tls_key is None):
            print("parley: give both --tls-cert and --tls-key, or neither", file=sys.stderr)
            return 2
        settings = Settings(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            database_url=args.database_url,
            broker_url=args.broker_url,
            demo=args.demo,
            rate_limit=args.rate_limit,
            token_rate_per_min=args.token_rate_per_min,
            log_level=args.log_level,
            tls_cert=args.tls_cert and Path(args.tls_cert),
            tls_key=args.tls_key and Path(args.tls_key),
        )
        return run(settings)
    try:
        asyncio.run(_admin(args))
    except ApiError as exc:
        print(f"parley: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return 1
    return 0


async def _admin(args: argparse.Namespace) -> None:
    from parley.service.accounts import Accounts
    from parley.store.factory import open_store

    store = open_store(args.data_dir, args.database_url)
    await store.open()
    try:
        accounts = Accounts(store)
        action: dict[tuple[str, str | None], Callable[[], Awaitable[Any]]] = {
            ("license", "create"): lambda: accounts.create_license(args.name),
            ("license", "set"): lambda: accounts.set_license(args.license, _license_changes(args)),
            ("group", "create"): lambda: accounts.create_group(args.license, args.name),
            ("agent", "create"): lambda: accounts.create_agent(
                args.license, args.email, args.name, args.password, args.group, args.max_chats
            ),
            ("agent", "list"): lambda: accounts.list_agents(args.license),
        }
        if args.noun == "export":
            await _export(store, args.license, args.since)
            return
        result = await action[(args.noun, args.verb)]()
        print(json.dumps(result))
    finally:
        await store.close()


def _license_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for flag in ("prechat_form", "public_agent_email"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = value == "on"
    if args.max_chats_per_agent is not None:
        changes["max_chats_per_agent"] = args.max_chats_per_agent
    return changes


async def _export(store: Any, license_id: int, since: str | None) -> None:
    if await store.get_license(license_id) is None:
        raise ApiError(ErrorType.LICENSE_NOT_FOUND, f"licence {license_id} does not exist")
    since_us = 0
    if since:
        day = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC)
        since_us = int(day.timestamp()) * 1_000_000
    async for chat, threads, events in store.export_chats(license_id, since_us):
        line = {
            "id": chat.id,
            "license_id": chat.license_id,
            "customer_id": chat.customer_id,
            "order": chat.order,
            "scopes": {"groups": chat.scopes},
            "properties": chat.properties,
            "agent_ids": chat.agent_ids,
            "threads": [views.thread(t, events[t.id], "agent") for t in threads],
        }
        sys.stdout.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
