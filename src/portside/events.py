"""Events other parts of Portside (webhooks, when they land) react to, in Harbor's vocabulary:
``SCANNING_COMPLETED``, ``SCANNING_FAILED``, ``SCANNING_STOPPED`` …

Publishing never fails the caller: each subscriber runs on its own and its errors are logged.
Every event is also written to the log as one structured line, so operators see them today.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = [
    "SCANNING_COMPLETED",
    "SCANNING_FAILED",
    "SCANNING_STOPPED",
    "Event",
    "EventBus",
]

log = structlog.get_logger("portside.events")

SCANNING_COMPLETED = "SCANNING_COMPLETED"
SCANNING_FAILED = "SCANNING_FAILED"
SCANNING_STOPPED = "SCANNING_STOPPED"

Subscriber = Callable[["Event"], Awaitable[None]]


@dataclass(frozen=True)
class Event:
    type: str
    repository: str
    digest: str
    operator: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    occurred_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, event: Event) -> None:
        log.info(
            "event",
            type=event.type,
            repository=event.repository,
            digest=event.digest,
            operator=event.operator,
            **event.data,
        )
        for subscriber in self._subscribers:
            try:
                await subscriber(event)
            except Exception:
                log.exception("event subscriber failed", type=event.type)
