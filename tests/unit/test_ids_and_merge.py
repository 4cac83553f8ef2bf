"""RFC 3339 microsecond times, the strictly increasing order clock (SPEC §4, §12) and the
name-level property merge (SPEC §4: `null` deletes; pushes carry only what changed)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any

from parley import ids
from parley.store.common import merge_properties

RFC3339_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def test_rfc3339_epoch() -> None:
    assert ids.rfc3339_us(0) == "1970-01-01T00:00:00.000000Z"


def test_rfc3339_exact_microseconds() -> None:
    assert ids.rfc3339_us(1_700_000_000_123_456) == "2023-11-14T22:13:20.123456Z"
    assert ids.rfc3339_us(1_700_000_000_000_001) == "2023-11-14T22:13:20.000001Z"
    assert ids.rfc3339_us(1_700_000_000_999_999) == "2023-11-14T22:13:20.999999Z"
    # the SPEC's own example
    stamp = int(datetime(2026, 11, 28, 21, 42, 40, tzinfo=UTC).timestamp()) * 1_000_000 + 123456
    assert ids.rfc3339_us(stamp) == "2026-11-28T21:42:40.123456Z"


def test_rfc3339_format_of_now() -> None:
    text = ids.rfc3339_us(ids.now_us())
    assert RFC3339_US.match(text)
    parsed = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(parsed.timestamp() - datetime.now(UTC).timestamp()) < 5


def test_rfc3339_has_no_float_rounding() -> None:
    # Large microsecond values lose precision through float seconds; this must not.
    for us in (4_102_444_799_999_999, 1_234_567_890_123_457, 253_402_300_799_999_999):
        text = ids.rfc3339_us(us)
        assert text.endswith(f".{us % 1_000_000:06d}Z")


def test_order_clock_strictly_increases() -> None:
    clock = ids.OrderClock()
    stamps = [clock.next() for _ in range(20_000)]
    assert all(b > a for a, b in itertools.pairwise(stamps))


def test_order_clock_follows_time() -> None:
    before = ids.now_us()
    stamp = ids.OrderClock().next()
    assert before <= stamp <= ids.now_us()


def test_order_clock_never_goes_back_after_a_later_last() -> None:
    future = ids.now_us() + 3_600_000_000
    clock = ids.OrderClock(last=future)
    assert clock.next() == future + 1
    assert clock.next() == future + 2


def test_short_ids_are_unique_and_shaped() -> None:
    made = {ids.short_id() for _ in range(5000)}
    assert len(made) == 5000
    assert all(re.fullmatch(r"[A-Z0-9]{10}", i) for i in made)


# -- merge_properties --------------------------------------------------------------------------


def test_merge_adds_and_reports() -> None:
    merged, changed = merge_properties({}, {"ns": {"a": 1}})
    assert merged == {"ns": {"a": 1}}
    assert changed == {"ns": {"a": 1}}


def test_merge_is_at_name_level() -> None:
    current = {"ns": {"a": 1, "b": 2}, "other": {"x": "y"}}
    merged, changed = merge_properties(current, {"ns": {"b": 3, "c": 4}})
    assert merged == {"ns": {"a": 1, "b": 3, "c": 4}, "other": {"x": "y"}}
    assert changed == {"ns": {"b": 3, "c": 4}}


def test_merge_null_deletes() -> None:
    merged, changed = merge_properties({"ns": {"a": 1, "b": 2}}, {"ns": {"a": None}})
    assert merged == {"ns": {"b": 2}}
    assert changed == {"ns": {"a": None}}


def test_merge_deleting_the_last_name_drops_the_namespace() -> None:
    merged, changed = merge_properties({"ns": {"a": 1}, "keep": {"k": 0}}, {"ns": {"a": None}})
    assert merged == {"keep": {"k": 0}}
    assert changed == {"ns": {"a": None}}


def test_merge_unchanged_values_are_not_reported() -> None:
    merged, changed = merge_properties({"ns": {"a": 1, "l": [1, 2]}}, {"ns": {"a": 1, "l": [1, 2]}})
    assert merged == {"ns": {"a": 1, "l": [1, 2]}}
    assert changed == {}


def test_merge_deleting_a_missing_name_is_no_change() -> None:
    merged, changed = merge_properties({"ns": {"a": 1}}, {"ns": {"zz": None}, "nothere": {"q": None}})
    assert merged == {"ns": {"a": 1}}
    assert changed == {}


def test_merge_falsy_values_are_values() -> None:
    merged, changed = merge_properties({}, {"ns": {"zero": 0, "no": False, "empty": "", "list": []}})
    assert merged == {"ns": {"zero": 0, "no": False, "empty": "", "list": []}}
    assert changed == merged


def test_merge_bool_replacing_a_number_is_a_change() -> None:
    # JSON 0 and false (1 and true) are different values; Python's 0 == False must not hide it.
    merged, changed = merge_properties({"ns": {"zero": 0, "one": 1}}, {"ns": {"zero": False, "one": True}})
    assert merged["ns"]["zero"] is False
    assert merged["ns"]["one"] is True
    assert changed == {"ns": {"zero": False, "one": True}}


def test_merge_does_not_touch_its_inputs() -> None:
    current: dict[str, Any] = {"ns": {"a": 1}}
    update: dict[str, Any] = {"ns": {"a": None, "b": 2}}
    merge_properties(current, update)
    assert current == {"ns": {"a": 1}}
    assert update == {"ns": {"a": None, "b": 2}}


def test_merge_empty_update() -> None:
    merged, changed = merge_properties({"ns": {"a": 1}}, {})
    assert merged == {"ns": {"a": 1}}
    assert changed == {}
