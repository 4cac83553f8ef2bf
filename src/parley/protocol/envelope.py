"""RTM frames in and out (SPEC §2). Pure functions: text in, dicts out, and back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from parley.protocol.errors import ApiError, ErrorType, validation


@dataclass(slots=True)
class Request:
    action: str
    payload: dict[str, Any]
    request_id: str | None = None


class FrameError(ApiError):
    """A frame so broken that no request_id can be trusted from it."""


def decode_frame(data: str | bytes) -> Request:
    """Parse one RTM text frame; raises FrameError (no request_id) or ApiError (with one)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(ErrorType.VALIDATION, f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError(ErrorType.VALIDATION, "frame must be a JSON object")
    request_id = obj.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise FrameError(ErrorType.VALIDATION, "`request_id` must be a string")
    return parse_request(obj, request_id)


def parse_request(obj: dict[str, Any], request_id: str | None) -> Request:
    action = obj.get("action")
    if not isinstance(action, str) or not action:
        raise RequestError(request_id, validation("`action` is required and must be a string"))
    payload = obj.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise RequestError(request_id, validation("`payload` must be an object"))
    unknown = set(obj) - {"request_id", "action", "payload", "author_id"}
    if unknown:
        raise RequestError(request_id, validation(f"unknown envelope field `{sorted(unknown)[0]}`"))
    return Request(action=action, payload=payload, request_id=request_id)


class RequestError(Exception):
    """An ApiError bound to the request_id of the frame it answers."""

    def __init__(self, request_id: str | None, error: ApiError, action: str | None = None) -> None:
        super().__init__(error.message)
        self.request_id = request_id
        self.error = error
        self.action = action


def response(action: str, payload: dict[str, Any], request_id: str | None) -> bytes:
    frame: dict[str, Any] = {"action": action, "type": "response", "success": True, "payload": payload}
    if request_id is not None:
        frame["request_id"] = request_id
    return orjson.dumps(frame)


def error_response(action: str | None, error: ApiError, request_id: str | None) -> bytes:
    frame: dict[str, Any] = {"type": "response", "success": False, "payload": error.to_payload()}
    if action is not None:
        frame["action"] = action
    if request_id is not None:
        frame["request_id"] = request_id
    return orjson.dumps(frame)


def push(action: str, payload: dict[str, Any], request_id: str | None = None) -> bytes:
    frame: dict[str, Any] = {"action": action, "type": "push", "payload": payload}
    if request_id is not None:
        frame["request_id"] = request_id
    return orjson.dumps(frame)
