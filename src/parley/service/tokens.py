"""Signed access and refresh tokens (JWT, HS256) bound to one licence and one side."""

from __future__ import annotations

import time

import jwt

from parley.protocol import limits
from parley.protocol.errors import ApiError, ErrorType

REFRESH_LIFETIME_S = 365 * 24 * 3600


class Tokens:
    def __init__(self, key: str, lifetime: int = limits.TOKEN_LIFETIME_S) -> None:
        self._key = key
        self.lifetime = lifetime

    def issue(self, side: str, license_id: int, user_id: str, kind: str = "access") -> str:
        now = int(time.time())
        life = self.lifetime if kind == "access" else REFRESH_LIFETIME_S
        claims = {"sub": user_id, "lic": license_id, "side": side, "kind": kind, "iat": now, "exp": now + life}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, side: str, license_id: int, kind: str = "access") -> str:
        """The user id the token was issued to; `authentication` unless it is valid right here."""
        if token.startswith("Bearer "):
            token = token[7:]
        try:
            claims = jwt.decode(token.strip(), self._key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        except jwt.ExpiredSignatureError:
            raise ApiError(ErrorType.AUTHENTICATION, "the access token has expired") from None
        except jwt.InvalidTokenError:
            raise ApiError(ErrorType.AUTHENTICATION, "the access token is not valid") from None
        if claims.get("side") != side or claims.get("kind") != kind:
            raise ApiError(ErrorType.AUTHENTICATION, f"this token is not a {side} {kind} token")
        if claims.get("lic") != license_id:
            raise ApiError(ErrorType.AUTHENTICATION, "this token belongs to another licence")
        return str(claims["sub"])

    def expires_at(self, token: str) -> int:
        if token.startswith("Bearer "):
            token = token[7:]
        return int(jwt.decode(token.strip(), self._key, algorithms=["HS256"])["exp"])
