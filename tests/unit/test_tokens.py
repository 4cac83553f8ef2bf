"""Access and refresh tokens (SPEC §2 "Access tokens"): one licence, one side, 8 h, `Bearer ` optional."""

from __future__ import annotations

import time

import pytest

from parley.protocol import limits
from parley.protocol.errors import ApiError, ErrorType
from parley.service import tokens as tokens_module
from parley.service.tokens import Tokens

KEY = "k" * 64


def refused(tokens: Tokens, token: str, side: str = "customer", license_id: int = 1, kind: str = "access") -> str:
    with pytest.raises(ApiError) as caught:
        tokens.verify(token, side, license_id, kind)
    assert caught.value.kind is ErrorType.AUTHENTICATION
    assert caught.value.kind.code == 401
    return caught.value.message


def test_issue_and_verify() -> None:
    tokens = Tokens(KEY)
    token = tokens.issue("customer", 1, "cust-1")
    assert isinstance(token, str) and token
    assert tokens.verify(token, "customer", 1) == "cust-1"


def test_bearer_prefix_is_accepted() -> None:
    tokens = Tokens(KEY)
    token = tokens.issue("agent", 3, "agent-9")
    assert tokens.verify(f"Bearer {token}", "agent", 3) == "agent-9"
    assert tokens.verify(token, "agent", 3) == "agent-9"


def test_default_lifetime_is_8_hours() -> None:
    tokens = Tokens(KEY)
    assert tokens.lifetime == limits.TOKEN_LIFETIME_S == 28800
    before = int(time.time())
    token = tokens.issue("customer", 1, "c")
    assert before + 28800 <= tokens.expires_at(token) <= int(time.time()) + 28800
    assert tokens.expires_at(f"Bearer {token}") == tokens.expires_at(token)


def test_wrong_side() -> None:
    tokens = Tokens(KEY)
    refused(tokens, tokens.issue("customer", 1, "c"), side="agent")
    refused(tokens, tokens.issue("agent", 1, "a"), side="customer")


def test_wrong_licence() -> None:
    tokens = Tokens(KEY)
    token = tokens.issue("customer", 1, "c")
    refused(tokens, token, license_id=2)
    assert tokens.verify(token, "customer", 1) == "c"


def test_expired_by_negative_lifetime() -> None:
    tokens = Tokens(KEY, lifetime=-1)
    message = refused(tokens, tokens.issue("customer", 1, "c"))
    assert "expired" in message


def test_expired_by_a_fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens(KEY)
    nine_hours_ago = time.time() - 9 * 3600
    monkeypatch.setattr(tokens_module.time, "time", lambda: nine_hours_ago)
    token = tokens.issue("customer", 1, "c")
    monkeypatch.undo()
    refused(tokens, token)


def test_still_valid_just_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = Tokens(KEY)
    almost_eight_hours_ago = time.time() - 8 * 3600 + 120
    monkeypatch.setattr(tokens_module.time, "time", lambda: almost_eight_hours_ago)
    token = tokens.issue("customer", 1, "c")
    monkeypatch.undo()
    assert tokens.verify(token, "customer", 1) == "c"


def test_another_key_is_refused() -> None:
    token = Tokens("a" * 64).issue("customer", 1, "c")
    refused(Tokens("b" * 64), token)


def test_same_key_verifies_across_instances() -> None:
    # What a restart looks like: a new Tokens with the key read back from the database.
    token = Tokens(KEY).issue("customer", 1, "c")
    assert Tokens(KEY).verify(token, "customer", 1) == "c"


@pytest.mark.parametrize("garbage", ["", "Bearer ", "abc", "a.b.c", "Bearer a.b.c", "Basic xyz"])
def test_malformed(garbage: str) -> None:
    refused(Tokens(KEY), garbage)


def test_tampered_token() -> None:
    tokens = Tokens(KEY)
    token = tokens.issue("customer", 1, "c")
    head, body, sig = token.split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    refused(tokens, f"{head}.{body}.{flipped}")


def test_refresh_and_access_tokens_are_not_interchangeable() -> None:
    tokens = Tokens(KEY)
    refresh = tokens.issue("customer", 1, "c", kind="refresh")
    access = tokens.issue("customer", 1, "c")
    refused(tokens, refresh)
    refused(tokens, access, kind="refresh")
    assert tokens.verify(refresh, "customer", 1, kind="refresh") == "c"


def test_refresh_token_outlives_the_access_token() -> None:
    tokens = Tokens(KEY, lifetime=-1)
    refresh = tokens.issue("customer", 1, "c", kind="refresh")
    assert tokens.verify(refresh, "customer", 1, kind="refresh") == "c"


def test_tokens_of_different_users_differ() -> None:
    tokens = Tokens(KEY)
    a, b = tokens.issue("customer", 1, "a"), tokens.issue("customer", 1, "b")
    assert a != b
    assert tokens.verify(a, "customer", 1) == "a"
    assert tokens.verify(b, "customer", 1) == "b"
