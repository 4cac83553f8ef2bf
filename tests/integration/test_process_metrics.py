"""`GET /metrics` (SPEC §1): Prometheus text with the required series, and counters that move."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator

import aiohttp
import pytest

from tests.support import Rtm, Server, customer_token, web_call

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    samples: Samples = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        found = _SAMPLE.match(line)
        assert found, f"not Prometheus text: {line!r}"
        labels = frozenset(_LABEL.findall(found.group(2) or ""))
        samples[(found.group(1), labels)] = float(found.group(3))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, match: Callable[[dict[str, str]], bool] = lambda labels: True) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and match(dict(labels)))


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own, so that gauges are not moved by other tests' sockets."""
    srv = Server(tmp_path_factory.mktemp("metrics"), "--demo", env={"PARLEY_TOKEN_RATE_PER_MIN": "0"}).start()
    yield srv
    srv.stop()


async def scrape(http: aiohttp.ClientSession, srv: Server) -> Samples:
    async with http.get(f"{srv.base}/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        return parse(await resp.text())


async def eventually(http: aiohttp.ClientSession, srv: Server, ok: Callable[[Samples], bool]) -> Samples:
    """Metrics settle a moment after the answer that caused them; poll up to 3 s."""
    for _ in range(60):
        samples = await scrape(http, srv)
        if ok(samples):
            return samples
        await asyncio.sleep(0.05)
    return samples


async def logged_in(http: aiohttp.ClientSession, srv: Server, token: str) -> Rtm:
    rtm = await Rtm.connect(http, srv.ws_base)
    await rtm.login(token)
    return rtm


async def test_required_series_are_present(own: Server, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{own.base}/metrics") as resp:
        text = await resp.text()
    samples = parse(text)
    assert ("parley_connections", frozenset({("side", "customer")})) in samples
    assert ("parley_connections", frozenset({("side", "agent")})) in samples
    assert "# TYPE parley_connections gauge" in text
    assert "# TYPE parley_requests_total counter" in text or "# TYPE parley_requests counter" in text
    assert ("parley_events_stored_total", frozenset()) in samples
    assert "# TYPE parley_push_latency_seconds histogram" in text
    buckets = [
        (dict(labels)["le"], v) for (n, labels), v in samples.items() if n == "parley_push_latency_seconds_bucket"
    ]
    assert any(le == "+Inf" for le, _ in buckets)
    assert len(buckets) >= 3
    assert ("parley_push_latency_seconds_count", frozenset()) in samples
    assert ("parley_push_latency_seconds_sum", frozenset()) in samples


async def test_requests_total_has_side_action_outcome(own: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, own.base))["access_token"]
    rtm = await logged_in(http, own, token)
    await rtm.call("ping")
    await rtm.close()
    samples = await eventually(
        http, own, lambda s: value(s, "parley_requests_total", side="customer", action="ping", outcome="success") >= 1
    )
    series = [dict(labels) for (n, labels) in samples if n == "parley_requests_total"]
    assert series
    assert all(set(labels) == {"side", "action", "outcome"} for labels in series), series


async def test_send_event_moves_requests_and_events_stored(own: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, own.base))["access_token"]
    rtm = await logged_in(http, own, token)
    chat = (await rtm.call("start_chat", {}))["chat"]
    before = await scrape(http, own)
    await rtm.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": "one"}})
    await rtm.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": "two"}})

    def moved(s: Samples) -> bool:
        return value(s, "parley_events_stored_total") >= value(before, "parley_events_stored_total") + 2

    after = await eventually(http, own, moved)
    assert value(after, "parley_events_stored_total") == value(before, "parley_events_stored_total") + 2
    key = {"side": "customer", "action": "send_event", "outcome": "success"}
    assert value(after, "parley_requests_total", **key) == value(before, "parley_requests_total", **key) + 2
    await rtm.close()


async def test_events_stored_counts_start_chat_events_and_web_api(own: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, own.base))["access_token"]
    before = await scrape(http, own)
    events = [{"type": "message", "text": "a"}, {"type": "message", "text": "b"}]
    status, started = await web_call(http, own.base, token, "start_chat", {"chat": {"thread": {"events": events}}})
    assert status == 200, started
    status, _ = await web_call(
        http,
        own.base,
        token,
        "send_event",
        {"chat_id": started["chat"]["id"], "event": {"type": "message", "text": "c"}},
    )
    assert status == 200
    after = await eventually(
        http, own, lambda s: value(s, "parley_events_stored_total") >= value(before, "parley_events_stored_total") + 3
    )
    assert value(after, "parley_events_stored_total") == value(before, "parley_events_stored_total") + 3


async def test_duplicate_and_failed_sends_store_nothing(own: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, own.base))["access_token"]
    rtm = await logged_in(http, own, token)
    chat = (await rtm.call("start_chat", {}))["chat"]
    event = {"type": "message", "text": "once", "custom_id": "m-1"}
    await rtm.call("send_event", {"chat_id": chat["id"], "event": event})
    before = await scrape(http, own)
    await rtm.call("send_event", {"chat_id": chat["id"], "event": event})  # idempotent retry
    error = await rtm.error("send_event", {"chat_id": "NOSUCHCHAT", "event": {"type": "message", "text": "x"}})
    assert error["type"] == "not_found"

    def failure_counted(s: Samples) -> bool:
        def failed(labels: dict[str, str]) -> bool:
            return labels.get("action") == "send_event" and labels.get("outcome") != "success"

        return total(s, "parley_requests_total", failed) > total(before, "parley_requests_total", failed)

    after = await eventually(http, own, failure_counted)
    assert failure_counted(after)
    assert value(after, "parley_events_stored_total") == value(before, "parley_events_stored_total")
    await rtm.close()


async def test_connections_gauge_follows_sockets(own: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, own.base))["access_token"]
    base = await eventually(http, own, lambda s: True)
    start = value(base, "parley_connections", side="customer")
    first = await logged_in(http, own, token)
    second = await logged_in(http, own, token)
    samples = await eventually(http, own, lambda s: value(s, "parley_connections", side="customer") == start + 2)
    assert value(samples, "parley_connections", side="customer") == start + 2
    await first.close()
    await second.close()
    samples = await eventually(http, own, lambda s: value(s, "parley_connections", side="customer") == start)
    assert value(samples, "parley_connections", side="customer") == start


async def test_push_latency_observed_for_a_push_to_another_connection(own: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, own.base))["access_token"]
    sender = await logged_in(http, own, token)
    watcher = await logged_in(http, own, token)
    chat = (await sender.call("start_chat", {}))["chat"]
    await watcher.push("incoming_chat_thread")
    before = await eventually(http, own, lambda s: True)
    count_before = value(before, "parley_push_latency_seconds_count")

    await sender.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": "seen twice"}})
    pushed = await watcher.push("incoming_event")
    assert pushed["payload"]["event"]["text"] == "seen twice"

    after = await eventually(http, own, lambda s: value(s, "parley_push_latency_seconds_count") > count_before)
    count = value(after, "parley_push_latency_seconds_count")
    assert count > count_before
    assert value(after, "parley_push_latency_seconds_sum") >= value(before, "parley_push_latency_seconds_sum")
    # buckets are cumulative and +Inf equals the count
    buckets = sorted(
        (
            (float(dict(labels)["le"]), v)
            for (n, labels), v in after.items()
            if n == "parley_push_latency_seconds_bucket"
        ),
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == (float("inf"), count)
    await sender.close()
    await watcher.close()


async def test_answers_alone_are_not_push_latency(own: Server, http: aiohttp.ClientSession) -> None:
    token = (await customer_token(http, own.base))["access_token"]
    lonely = await logged_in(http, own, token)  # the only connection: nothing to push to
    chat = (await lonely.call("start_chat", {}))["chat"]
    before = await eventually(http, own, lambda s: True)
    await lonely.call("send_event", {"chat_id": chat["id"], "event": {"type": "message", "text": "x"}})
    await lonely.call("ping")
    await asyncio.sleep(0.2)
    after = await scrape(http, own)
    assert value(after, "parley_push_latency_seconds_count") == value(before, "parley_push_latency_seconds_count")
    await lonely.close()
