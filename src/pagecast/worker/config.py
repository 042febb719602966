"""The worker's settings, read once from `Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from pagecast.settings import Settings

__all__ = ["WorkerConfig"]


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int
    chunk_size: int
    max_attempts: int
    retry_base: float
    retry_cap: float
    heartbeat_ttl: int
    shutdown_grace: float
    breaker_consecutive: int
    breaker_ratio: float
    breaker_window: int
    max_schedule_lateness: float = 3600.0
    # Messages per Send request (1: one request each; up to 50: one Graph batch request).
    send_batch: int = 1
    sweep_seconds: float = 15.0
    # Webhook events still unprocessed this long after arrival are retried by the sweep.
    webhook_retry_after: float = 30.0
    # Seconds an `unknown` delivery waits for its echo before it is reconciled.
    unknown_grace: float = 600.0
    # Outbound webhooks (issue 22): private targets allowed, one attempt's timeout, polling.
    webhooks_allow_private: bool = False
    webhooks_timeout: float = 10.0
    webhooks_poll: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings, *, concurrency: int | None = None) -> WorkerConfig:
        return cls(
            concurrency=concurrency or settings.worker_concurrency,
            chunk_size=settings.chunk_size,
            max_attempts=settings.max_attempts,
            retry_base=settings.retry_base_seconds,
            retry_cap=settings.retry_cap_seconds,
            heartbeat_ttl=settings.worker_heartbeat_ttl,
            shutdown_grace=settings.shutdown_grace_seconds,
            breaker_consecutive=settings.breaker_consecutive_bad,
            breaker_ratio=settings.breaker_failure_ratio,
            breaker_window=settings.breaker_window,
            max_schedule_lateness=settings.max_schedule_lateness,
            send_batch=settings.send_batch_size,
            sweep_seconds=settings.sweep_seconds,
            webhook_retry_after=settings.webhook_retry_seconds,
            unknown_grace=settings.unknown_grace,
            webhooks_allow_private=settings.webhooks_allow_private_targets,
            webhooks_timeout=settings.webhooks_timeout_seconds,
            webhooks_poll=settings.webhooks_poll_seconds,
        )
