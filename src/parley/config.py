"""Settings of one `parley serve` process: flags, each with a PARLEY_<FLAG> environment default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from parley.protocol import limits


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./parley-data")
    database_url: str | None = None
    broker_url: str | None = None
    demo: bool = False
    # Abuse limits of SPEC §8; 0 switches one off (load tests from one IP need that).
    rate_limit: float = limits.RATE_PER_SECOND
    token_rate_per_min: int = limits.CUSTOMER_TOKENS_PER_IP_PER_MIN
    log_level: str = "INFO"
    # Optional TLS: both or neither (real LiveChat SDKs connect with a fixed https:// / wss:// scheme).
    tls_cert: Path | None = None
    tls_key: Path | None = None
