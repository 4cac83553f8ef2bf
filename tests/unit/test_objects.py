"""`objects.check_properties` and friends (SPEC §4: names `[A-Za-z0-9_.-]{1,64}`, values ≤ 4 KiB)."""

from __future__ import annotations

from typing import Any

import pytest

from parley.protocol.errors import ApiError, ErrorType
from parley.protocol.objects import check_customer_properties, check_name, check_properties, encoded_size

GOOD_NAMES = ["a", "A", "0", "_", ".", "-", "ns.sub-name_1", "x" * 64, "ABCxyz019_.-"]
BAD_NAMES = ["", "x" * 65, "a b", "a/b", "é", "a:b", "a\nb", "ns*", "😀", "a,b", "\t"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(name: str) -> None:
    check_name(name, "properties")
    check_properties({name: {name: 1}})


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_namespace(name: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_properties({name: {"ok": 1}})
    assert caught.value.kind is ErrorType.VALIDATION
    assert "properties" in caught.value.message


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_property_name(name: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_properties({"ns": {name: 1}}, "chat.properties")
    assert caught.value.kind is ErrorType.VALIDATION
    assert "chat.properties.ns" in caught.value.message


def test_newline_at_the_end_is_not_a_name() -> None:
    # `$` in a Python regex would also match before a trailing newline.
    with pytest.raises(ApiError):
        check_name("abc\n", "properties")


def test_none_and_empty_are_fine() -> None:
    check_properties(None)
    check_properties({})
    check_properties({"ns": {}})


def test_namespace_must_hold_an_object() -> None:
    for bad in ([1, 2], "x", 3, None):
        with pytest.raises(ApiError) as caught:
            check_properties({"ns": bad})  # type: ignore[dict-item]
        assert caught.value.kind is ErrorType.VALIDATION
        assert "properties.ns" in caught.value.message


@pytest.mark.parametrize("value", [None, True, 0, -1.5, "", "text", [1, "a"], {"nested": {"deep": [None]}}])
def test_any_json_value_is_allowed(value: Any) -> None:
    check_properties({"ns": {"v": value}})


def test_null_can_be_refused() -> None:
    with pytest.raises(ApiError) as caught:
        check_properties({"ns": {"v": None}}, "event.properties", allow_null=False)
    assert caught.value.kind is ErrorType.VALIDATION
    assert "event.properties.ns.v" in caught.value.message


def test_value_size_limit() -> None:
    check_properties({"ns": {"v": "x" * 4000}})
    check_properties({"ns": {"v": "x" * 4094}})  # 4096 bytes encoded, with its quotes
    with pytest.raises(ApiError) as caught:
        check_properties({"ns": {"v": "x" * 4097}}, "chat.properties")
    assert caught.value.kind is ErrorType.ENTITY_TOO_LARGE
    assert caught.value.kind.code == 413
    assert "chat.properties.ns.v" in caught.value.message


def test_value_size_counts_encoded_bytes() -> None:
    # 2100 two-byte characters: 2100 characters, but 4202 bytes of UTF-8.
    with pytest.raises(ApiError) as caught:
        check_properties({"ns": {"v": "é" * 2100}})
    assert caught.value.kind is ErrorType.ENTITY_TOO_LARGE
    with pytest.raises(ApiError):
        check_properties({"ns": {"v": ["x" * 1000] * 5}})


def test_encoded_size() -> None:
    assert encoded_size("ab") == 4
    assert encoded_size({"a": 1}) == len('{"a":1}')
    assert encoded_size("é") == 4


def test_customer_properties() -> None:
    check_customer_properties(None)
    check_customer_properties({f"k{i}": "v" for i in range(100)})
    with pytest.raises(ApiError) as caught:
        check_customer_properties({f"k{i}": "v" for i in range(101)})
    assert caught.value.kind is ErrorType.VALIDATION
    check_customer_properties({"k": "v" * 4096})
    with pytest.raises(ApiError) as caught:
        check_customer_properties({"k": "v" * 4097})
    assert caught.value.kind is ErrorType.ENTITY_TOO_LARGE
    with pytest.raises(ApiError) as caught:
        check_customer_properties({"bad key": "v"})
    assert caught.value.kind is ErrorType.VALIDATION
