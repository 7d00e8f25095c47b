"""The outbox and history of final outcomes, and their webhook delivery when configured."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable

import httpx

from agent.config.settings import Settings, SettingsError
from agent.mfa_agent import MfaAgent
from agent.outcomes.delivery import Deliverer
from agent.outcomes.metrics import OutcomeMetrics
from agent.outcomes.outbox import Outbox
from agent.outcomes.webhook import WebhookSender
from agent.state import StateBackend


def outbox_for(
    settings: Settings,
    state: StateBackend,
    http: httpx.AsyncClient,
    agent: MfaAgent,
    metrics: OutcomeMetrics,
    clock: Callable[[], float] | None,
) -> Outbox:
    """The outbox and history of final outcomes, and their delivery when a receiver is
    configured. Registered after the HTTP client and the state: it stops before them."""
    hook, outcomes = settings.file.webhook, settings.file.outcomes
    retention_seconds = outcomes.retention_days * 86400
    try:
        store = state.outbox_store(
            settings.outbox_path,
            consumer=agent.agent_id,
            retention_seconds=retention_seconds,
            claim_idle_seconds=hook.claim_idle_seconds,
        )
    except (OSError, sqlite3.Error) as exc:
        raise SettingsError(
            f"outcomes.outbox_path {settings.outbox_path}: cannot open the outbox "
            f"({getattr(exc, 'strerror', None) or type(exc).__name__})"
        ) from None
    deliverer = None
    if settings.outcome_webhook_url and settings.outcome_webhook_secret:
        sender = WebhookSender(
            url=settings.outcome_webhook_url,
            secret=settings.outcome_webhook_secret.get_secret_value(),
            http=http,
            request_timeout=hook.request_timeout_seconds,
            clock=time.time,  # signatures carry the real time: the receiver checks it
        )
        deliverer = agent.deliverer = Deliverer(
            store,
            sender,
            workers=hook.workers,
            retry_seconds=hook.retry_hours * 3600,
            base_seconds=hook.retry_base_seconds,
            max_interval_seconds=hook.retry_max_interval_seconds,
            clock=clock or time.time,
            on_result=metrics.on_delivery,
        )
        logging.getLogger("mfa.outcome_webhook").info(
            "outcome_webhook_enabled", extra={"host": sender.host}
        )
    outbox = Outbox(
        store,
        deliver=deliverer is not None,
        retention_seconds=retention_seconds,
        clock=clock or time.time,
        wake=deliverer.wake if deliverer is not None else None,
        provider=str(settings.provider),
    )
    agent.on_lifecycle(start=outbox.start, stop=outbox.stop)
    if deliverer is not None:
        agent.on_lifecycle(start=deliverer.start, stop=deliverer.stop)
    return outbox
