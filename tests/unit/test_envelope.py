"""RTM frames (SPEC §2, §3, §12): decoding requests and encoding answers, pushes and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.protocol.envelope import (
    FrameError,
    Request,
    RequestError,
    decode_frame,
    error_response,
    push,
    response,
)
from parley.protocol.errors import ApiError, ErrorType, not_found, too_large, validation


def _frame(raw: bytes) -> dict[str, Any]:
    obj = json.loads(raw)
    assert isinstance(obj, dict)
    return obj


# -- decoding ------------------------------------------------------------------------------


def test_full_request_is_decoded() -> None:
    req = decode_frame('{"request_id": "abc", "action": "send_event", "payload": {"chat_id": "X"}}')
    assert isinstance(req, Request)
    assert req.request_id == "abc"
    assert req.action == "send_event"
    assert req.payload == {"chat_id": "X"}


def test_request_id_is_optional() -> None:
    req = decode_frame('{"action": "ping"}')
    assert req.request_id is None
    assert req.action == "ping"
    assert req.payload == {}


def test_bytes_frame_is_accepted() -> None:
    req = decode_frame(b'{"action": "ping", "request_id": "1"}')
    assert (req.action, req.request_id) == ("ping", "1")


def test_null_payload_means_empty() -> None:
    assert decode_frame('{"action": "ping", "payload": null}').payload == {}


@pytest.mark.parametrize("data", ["{", "not json", "", '{"action": "ping",}', "\u00ff\u00fe"])
def test_bad_json_is_a_frame_error(data: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(data)
    assert caught.value.kind is ErrorType.VALIDATION
    assert caught.value.kind.code == 400


@pytest.mark.parametrize("data", ["[]", '[{"action": "ping"}]', '"ping"', "42", "null", "true"])
def test_non_object_is_a_frame_error(data: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(data)
    assert caught.value.kind is ErrorType.VALIDATION


def test_frame_error_is_an_api_error() -> None:
    # The transport answers it like any other error, only without a request_id.
    assert issubclass(FrameError, ApiError)


@pytest.mark.parametrize("request_id", ["7", "[1]", '{"a": 1}', "true"])
def test_non_string_request_id_cannot_be_echoed(request_id: str) -> None:
    with pytest.raises(FrameError):
        decode_frame(f'{{"request_id": {request_id}, "action": "ping"}}')


@pytest.mark.parametrize(
    "frame",
    [
        '{"request_id": "r9"}',
        '{"request_id": "r9", "action": ""}',
        '{"request_id": "r9", "action": 5}',
        '{"request_id": "r9", "action": null}',
    ],
)
def test_missing_or_bad_action_keeps_the_request_id(frame: str) -> None:
    with pytest.raises(RequestError) as caught:
        decode_frame(frame)
    assert caught.value.request_id == "r9"
    assert caught.value.error.kind is ErrorType.VALIDATION
    assert "action" in caught.value.error.message


def test_missing_action_without_request_id() -> None:
    with pytest.raises(RequestError) as caught:
        decode_frame('{"payload": {}}')
    assert caught.value.request_id is None
    assert caught.value.error.kind is ErrorType.VALIDATION


@pytest.mark.parametrize("payload", ["[]", '"x"', "3", "true"])
def test_non_object_payload_is_validation_with_request_id(payload: str) -> None:
    with pytest.raises(RequestError) as caught:
        decode_frame(f'{{"request_id": "p1", "action": "ping", "payload": {payload}}}')
    assert caught.value.request_id == "p1"
    assert caught.value.error.kind is ErrorType.VALIDATION
    assert "payload" in caught.value.error.message


# -- encoding ------------------------------------------------------------------------------


def test_response_echoes_request_id() -> None:
    frame = _frame(response("send_event", {"thread_id": "T"}, "abc"))
    assert frame == {
        "request_id": "abc",
        "action": "send_event",
        "type": "response",
        "success": True,
        "payload": {"thread_id": "T"},
    }


def test_response_without_request_id_has_none() -> None:
    frame = _frame(response("ping", {}, None))
    assert "request_id" not in frame
    assert frame["payload"] == {}
    assert frame["success"] is True
    assert frame["type"] == "response"


def test_error_response_shape() -> None:
    frame = _frame(error_response("send_event", not_found("chat"), "e1"))
    assert frame["request_id"] == "e1"
    assert frame["action"] == "send_event"
    assert frame["type"] == "response"
    assert frame["success"] is False
    error = frame["payload"]["error"]
    assert error["type"] == "not_found"
    assert error["code"] == 404
    assert isinstance(error["message"], str) and error["message"]


def test_error_response_without_request_id_has_none() -> None:
    frame = _frame(error_response(None, validation("frame is not valid JSON"), None))
    assert "request_id" not in frame
    assert frame["success"] is False
    assert frame["payload"]["error"]["type"] == "validation"
    assert frame["payload"]["error"]["code"] == 400


def test_error_data_is_optional() -> None:
    plain = _frame(error_response("x", validation("bad"), None))["payload"]["error"]
    assert "data" not in plain
    detailed = ApiError(ErrorType.LIMIT_REACHED, "too many", {"limit": 10})
    error = _frame(error_response("x", detailed, None))["payload"]["error"]
    assert error == {"type": "limit_reached", "code": 429, "message": "too many", "data": {"limit": 10}}


def test_push_shape() -> None:
    frame = _frame(push("incoming_event", {"chat_id": "C"}))
    assert frame == {"action": "incoming_event", "type": "push", "payload": {"chat_id": "C"}}


def test_round_trip_of_unicode_text() -> None:
    text = "zażółć 🦜 <b>"
    frame = _frame(response("send_event", {"event": {"text": text}}, "u"))
    assert frame["payload"]["event"]["text"] == text


# -- the error table of SPEC §3 ------------------------------------------------------------

SPEC_TABLE = {
    "validation": 400,
    "authentication": 401,
    "authorization": 403,
    "customer_banned": 403,
    "license_not_found": 404,
    "not_found": 404,
    "group_not_found": 404,
    "chat_inactive": 409,
    "entity_too_large": 413,
    "limit_reached": 429,
    "too_many_requests": 429,
    "unsupported_version": 400,
    "request_timeout": 408,
    "internal": 500,
}


def test_error_types_match_the_spec_table() -> None:
    assert {t.type_name: t.code for t in ErrorType} == SPEC_TABLE


def test_error_helpers() -> None:
    big = too_large("event.text", "16 KiB")
    assert big.kind is ErrorType.ENTITY_TOO_LARGE
    assert "event.text" in big.message
    assert big.to_payload() == {"error": {"type": "entity_too_large", "code": 413, "message": big.message}}
    assert not_found("thread").to_payload()["error"]["code"] == 404
