"""The error table of SPEC §3: every failure a client can see is one of these."""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorType(Enum):
    VALIDATION = ("validation", 400)
    AUTHENTICATION = ("authentication", 401)
    AUTHORIZATION = ("authorization", 403)
    CUSTOMER_BANNED = ("customer_banned", 403)
    LICENSE_NOT_FOUND = ("license_not_found", 404)
    NOT_FOUND = ("not_found", 404)
    GROUP_NOT_FOUND = ("group_not_found", 404)
    REQUEST_TIMEOUT = ("request_timeout", 408)
    CHAT_INACTIVE = ("chat_inactive", 409)
    ENTITY_TOO_LARGE = ("entity_too_large", 413)
    LIMIT_REACHED = ("limit_reached", 429)
    TOO_MANY_REQUESTS = ("too_many_requests", 429)
    UNSUPPORTED_VERSION = ("unsupported_version", 400)
    INTERNAL = ("internal", 500)

    @property
    def type_name(self) -> str:
        return self.value[0]

    @property
    def code(self) -> int:
        return self.value[1]


class ApiError(Exception):
    """An error answer; raising it anywhere below the transport aborts the request unchanged."""

    def __init__(self, kind: ErrorType, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.data = data

    def to_payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.kind.type_name, "code": self.kind.code, "message": self.message}
        if self.data:
            error["data"] = self.data
        return {"error": error}


def validation(message: str) -> ApiError:
    return ApiError(ErrorType.VALIDATION, message)


def not_found(what: str) -> ApiError:
    return ApiError(ErrorType.NOT_FOUND, f"{what} not found")


def too_large(field: str, limit: str) -> ApiError:
    return ApiError(ErrorType.ENTITY_TOO_LARGE, f"`{field}` is over its limit of {limit}")
