"""Errors raised by `shared.relay`.

Hierarchy::

    RelayError                  base of everything the relay raises (a `shared.errors.SharedError`)
    ├── CallRefused             the receiver refuses a whole call, with a `CallRefusal` reason (docs/wire-v1.md "Errors")
    │   ├── LimitExceeded       a request breaks an explicit bound (batch size, message size): RESOURCE_EXHAUSTED
    │   ├── MalformedRequest    a request cannot be decoded or is inconsistent: INVALID_ARGUMENT
    │   └── EnrollmentLimit     too many enrollments wait for approval (in total or from one address)
    ├── StoreConflict           the author's chain moved under a concurrent write; the batch may be retried
    ├── KeyStoreError           the receiving store refused an operation on a key (wrong state, broken chain)
    │   └── UnknownKey          no key (or no unique one) matches the id or prefix an operator typed
    ├── PeerUnavailable         the other tier cannot be reached (down, cut, deadline passed)
    │   └── TlsHandshakeFailed  reached, but the encrypted link could not be set up (untrusted or wrong certificate)
    ├── SyncRefused             the other tier answered but refused (unknown/pending/revoked key, bad request)
    └── TlsConfigError          a TLS certificate, key or CA file is missing, unreadable, invalid or too open

Messages are Chinese: operators and agents read them.
"""
from __future__ import annotations

from shared.errors import SharedError
from shared.wire.v1 import relay_pb2

__all__ = ["RelayError", "CallRefused", "EnrollmentLimit", "LimitExceeded", "MalformedRequest", "StoreConflict",
           "KeyStoreError", "UnknownKey", "PeerUnavailable", "SyncRefused", "TlsHandshakeFailed", "TlsConfigError"]


class RelayError(SharedError):
    """Base of every error raised by `shared.relay`."""


class CallRefused(RelayError):
    """Raised by `RelayCore` when it refuses a whole call. `reason` is a `relay_pb2.CallRefusal`
    value; `code` the gRPC status code; `metadata` the figures the client may act on (e.g.
    `retry_after_ms`, `server_time_ms`). The message is Chinese: it is what the sender's staff read."""

    default_reason: int = relay_pb2.CALL_REFUSAL_MALFORMED
    default_code: str = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, reason: int | None = None, code: str | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = self.default_reason if reason is None else reason
        self.code = code or self.default_code
        self.metadata = dict(metadata or {})


class LimitExceeded(CallRefused):
    """A request exceeds a configured bound; answered with RESOURCE_EXHAUSTED (BATCH_TOO_LARGE by default)."""

    default_reason = relay_pb2.CALL_REFUSAL_BATCH_TOO_LARGE
    default_code = "RESOURCE_EXHAUSTED"


class MalformedRequest(CallRefused):
    """A request cannot be decoded or contradicts itself; answered with INVALID_ARGUMENT (MALFORMED by
    default; the auth refusals of Pull and Recover pass their own reason and code)."""


class EnrollmentLimit(CallRefused):
    """Raised by `RelayStore.enroll` when pending enrollments reach their bound; RESOURCE_EXHAUSTED."""

    default_reason = relay_pb2.CALL_REFUSAL_ENROLLMENT_LIMIT
    default_code = "RESOURCE_EXHAUSTED"


class StoreConflict(RelayError):
    """The author's chain tip or key status changed between reading and committing a batch."""


class KeyStoreError(RelayError):
    """Raised by `RelayStore` when an operation does not fit a key's state or the chain it holds."""


class UnknownKey(KeyStoreError):
    """Raised by `RelayStore` when no key, or more than one, matches the id (prefix) given."""


class PeerUnavailable(RelayError):
    """The destination could not be reached, did not answer within the deadline, or said it is busy
    (then `retry_after_s` is how long it asked the sender to wait; 0 when it did not say)."""

    def __init__(self, message: str, *, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SyncRefused(RelayError):
    """The destination answered with a refusal the sender cannot fix by retrying at once."""


class TlsHandshakeFailed(PeerUnavailable):
    """The TLS handshake failed: the certificate is not from the configured CA, does not name the
    address dialled, has expired (or the laptop's clock is wrong), or one side speaks plain text.
    Retried like any unavailability; the outbox keeps everything meanwhile."""


class TlsConfigError(RelayError):
    """A TLS file given on the command line or in the settings cannot be used; raised at start-up,
    before anything listens or dials. The message names the file and the fix."""
