"""Abuse limits of SPEC §8 with a fake clock: 20 requests/s sustained with a burst of 50, and
60 new customer tokens per IP per minute."""

from __future__ import annotations

from parley.protocol import limits
from parley.service.ratelimit import KeyedBuckets, TokenBucket, WindowCounter


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def takes(bucket: TokenBucket, n: int) -> int:
    """How many of n immediate requests were allowed."""
    return sum(bucket.take() for _ in range(n))


def spec_bucket(clock: FakeClock) -> TokenBucket:
    return TokenBucket(limits.RATE_PER_SECOND, limits.RATE_BURST, clock=clock)


def test_spec_numbers() -> None:
    assert limits.RATE_PER_SECOND == 20
    assert limits.RATE_BURST == 50
    assert limits.CUSTOMER_TOKENS_PER_IP_PER_MIN == 60


def test_burst_of_50_then_refused() -> None:
    bucket = spec_bucket(FakeClock())
    assert takes(bucket, 50) == 50
    assert bucket.take() is False
    assert bucket.take() is False


def test_refill_at_20_per_second() -> None:
    clock = FakeClock()
    bucket = spec_bucket(clock)
    assert takes(bucket, 60) == 50
    clock.advance(0.051)  # just over one token's worth
    assert takes(bucket, 5) == 1
    clock.advance(1.0)
    assert takes(bucket, 100) == 20


def test_refused_requests_cost_nothing() -> None:
    clock = FakeClock()
    bucket = spec_bucket(clock)
    assert takes(bucket, 500) == 50
    clock.advance(0.5)
    assert takes(bucket, 100) == 10


def test_sustained_20_per_second_is_never_refused() -> None:
    clock = FakeClock()
    bucket = spec_bucket(clock)
    assert takes(bucket, 50) == 50
    for _ in range(200):
        clock.advance(0.0501)  # a hair under 20/s, so float rounding cannot decide the test
        assert bucket.take() is True


def test_bucket_never_holds_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = spec_bucket(clock)
    clock.advance(3600)
    assert takes(bucket, 200) == 50


def test_partial_refill_keeps_fractions() -> None:
    clock = FakeClock()
    bucket = spec_bucket(clock)
    takes(bucket, 50)
    for _ in range(4):
        clock.advance(0.0126)  # a bit over a quarter token each
    assert bucket.take() is True
    assert bucket.take() is False


def test_rate_zero_means_unlimited() -> None:
    bucket = TokenBucket(0, limits.RATE_BURST, clock=FakeClock())
    assert takes(bucket, 1000) == 1000


def test_keyed_buckets_are_independent() -> None:
    buckets = KeyedBuckets(limits.RATE_PER_SECOND, limits.RATE_BURST)
    assert sum(buckets.take("a") for _ in range(60)) == 50
    assert sum(buckets.take("b") for _ in range(60)) == 50


def test_keyed_buckets_forget_beyond_max_keys() -> None:
    buckets = KeyedBuckets(1.0, 1.0, max_keys=2)
    assert buckets.take("a") is True
    assert buckets.take("a") is False
    buckets.take("b")
    buckets.take("c")  # evicts "a", the least recently used
    assert buckets.take("a") is True


def spec_window(clock: FakeClock) -> WindowCounter:
    return WindowCounter(limits.CUSTOMER_TOKENS_PER_IP_PER_MIN, 60.0, clock=clock)


def allowed(counter: WindowCounter, key: str, n: int) -> int:
    return sum(counter.allow(key) for _ in range(n))


def test_window_allows_60_per_minute() -> None:
    counter = spec_window(FakeClock())
    assert allowed(counter, "1.2.3.4", 60) == 60
    assert counter.allow("1.2.3.4") is False


def test_window_is_per_key() -> None:
    counter = spec_window(FakeClock())
    assert allowed(counter, "1.2.3.4", 70) == 60
    assert allowed(counter, "5.6.7.8", 70) == 60


def test_window_slides() -> None:
    clock = FakeClock()
    counter = spec_window(clock)
    assert allowed(counter, "ip", 30) == 30
    clock.advance(30)
    assert allowed(counter, "ip", 40) == 30
    clock.advance(29)  # 59 s after the first 30: they still count
    assert counter.allow("ip") is False
    clock.advance(1.5)  # the first 30 have left the window
    assert allowed(counter, "ip", 40) == 30
    assert counter.allow("ip") is False


def test_window_refusals_do_not_count() -> None:
    clock = FakeClock()
    counter = spec_window(clock)
    allowed(counter, "ip", 60)
    for _ in range(100):
        clock.advance(0.1)
        assert counter.allow("ip") is False
    clock.advance(60 - 10 + 0.5)  # 60.5 s after the 60 allowed ones
    assert allowed(counter, "ip", 100) == 60


def test_window_limit_zero_means_unlimited() -> None:
    counter = WindowCounter(0, 60.0, clock=FakeClock())
    assert allowed(counter, "ip", 1000) == 1000
