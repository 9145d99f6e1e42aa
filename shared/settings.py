"""Settings from the environment: every variable carries the one prefix ``CT_``.

Twelve-factor style: nothing is read from files in production; ``convtrack stack up`` writes an
``env`` file that a developer can ``source`` to point every service at the local stack.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All configuration of all services. Each service reads only the fields it needs."""

    model_config = SettingsConfigDict(env_prefix="CT_", extra="ignore", frozen=True)

    # Shared infrastructure.
    nats_url: str = Field(
        "nats://127.0.0.1:4222", description="NATS server URL(s), comma separated"
    )
    clickhouse_url: str = Field(
        "clickhouse://default:@127.0.0.1:9000/default",
        description="clickhouse://user:password@host:native_port/database",
    )
    clickhouse_cluster: str = Field(
        "", description="cluster name for ON CLUSTER DDL; empty = single node"
    )

    # Logging.
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"

    # Aggregator.
    aggregator_batch_size: int = Field(5000, ge=1, le=100_000)
    aggregator_max_wait_ms: int = Field(200, ge=10, le=60_000)
    aggregator_ack_wait_s: int = Field(60, ge=5, le=3600)
    aggregator_metrics_listen: str = "127.0.0.1:9102"
    aggregator_durable: str = "aggregator"
    aggregator_check_ids: Literal["redelivered", "always"] = Field(
        "redelivered",
        description="which ids the aggregator looks up in ClickHouse before inserting: only "
        "redelivered messages (enough for crash/redelivery), or every message",
    )
    aggregator_fault: Literal["", "exit_after_insert"] = Field(
        "",
        description="TEST ONLY: exit_after_insert makes the aggregator die between insert and ack",
    )

    # API.
    api_listen: str = "127.0.0.1:8080"
    api_keys: str = Field("", description="dev keys: tenant:key[:viewer],... ")
    api_keys_file: str = Field(
        "", description="production: file of tenant:sha256(key)[:viewer] lines"
    )
    api_public_url: str = Field("", description="base URL FreeSWITCH uses to fetch prompt audio")
    api_signing_key: str = Field("dev-signing-key-change-me", description="HMAC key for audio URLs")

    # IVR.
    ivr_listen: str = "0.0.0.0:8084"
    ivr_metrics_listen: str = "127.0.0.1:9103"
    ivr_buffer_size: int = Field(100_000, ge=1)
    ivr_grace_s: float = Field(60.0, ge=0)
    ivr_max_connections: int = Field(2000, ge=1)

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_scheme(cls, value: str) -> str:
        if not value.startswith(("clickhouse://", "clickhouses://")):
            raise ValueError("CT_CLICKHOUSE_URL must start with clickhouse:// (native protocol)")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str) -> str:
        for url in value.split(","):
            if not url.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                raise ValueError(f"CT_NATS_URL entry {url!r} must start with nats:// or tls://")
        return value

    @property
    def nats_servers(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]


def split_host_port(listen: str) -> tuple[str, int]:
    """``"0.0.0.0:8084"`` -> ``("0.0.0.0", 8084)``; raises ValueError on anything else."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {listen!r} must be HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
