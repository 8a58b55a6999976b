"""Errors raised by `shared.deadline_watch`.

Hierarchy::

    SharedError                         (shared.errors)
    └── DeadlineWatchError
        ├── DeadlineStoreError          a deadline table cannot be read or written, or the database is
        │                               not one we support (SQLite, PostgreSQL); wraps the driver error
        ├── NotificationError           a notification could not be delivered
        │   ├── DeliveryRetryableError  timed out, no connection, or 5xx/429 after every retry:
        │   │                           the outbox tries again later
        │   └── DeliveryRejectedError   the endpoint refused it (4xx other than 429): the same
        │                               request will never succeed, so the outbox stops retrying
        └── WatchStateError             the watch was started twice, or used after shutdown

Messages never carry personal data (no phone numbers, no names): they end up in logs.
"""
from __future__ import annotations

from shared.errors import SharedError

__all__ = [
    "DeadlineWatchError",
    "DeadlineStoreError",
    "NotificationError",
    "DeliveryRetryableError",
    "DeliveryRejectedError",
    "WatchStateError",
]


class DeadlineWatchError(SharedError):
    """Base of every error raised by `shared.deadline_watch`."""


class DeadlineStoreError(DeadlineWatchError):
    """A deadline table cannot be read or written, or the database kind is unsupported."""


class NotificationError(DeadlineWatchError):
    """A notification could not be delivered. `reason` is short and free of personal data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeliveryRetryableError(NotificationError):
    """Delivery failed in a way that may pass (timeout, connection error, 5xx, 429)."""


class DeliveryRejectedError(NotificationError):
    """The endpoint refused the notification (4xx): retrying the same request will not help."""


class WatchStateError(DeadlineWatchError):
    """The watch was started twice or used after shutdown."""
