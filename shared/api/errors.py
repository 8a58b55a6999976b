"""Errors raised by `shared.api`, the JSON API foundation both tiers mount beside their consoles.

Hierarchy::

    ApiError (SharedError)          a call is refused; carries `status_code`, a machine-readable `code`
    │                               and a Chinese `message` (the JSON error body's three fields)
    ├── NotAuthenticated            no usable bearer token: missing, malformed, unknown, expired, revoked,
    │                               or its staff account is disabled (401)
    ├── Forbidden                   the token's staff member may not do this: the same role rule the
    │                               console applies (403)
    ├── NotFound                    the matter, key or notice the path names does not exist here (404)
    ├── Conflict                    the matter moved since the caller read it (optimistic concurrency) or
    │                               the thing is in a state that does not allow the call (409)
    └── Unprocessable               the body is well-formed JSON but the rules refuse it (422)
    TokenError (SharedError)        a `staff token` command cannot do what was asked: unknown account or
                                    token number, a disabled account, an expiry out of range

`SharedError` is printed by the CLIs as a Chinese message, so `TokenError` needs no handling there.
Every message is Chinese and names no internal identifier: a person may read it.
"""
from __future__ import annotations

from shared.errors import SharedError

__all__ = ["ApiError", "NotAuthenticated", "Forbidden", "NotFound", "Conflict", "Unprocessable", "TokenError"]


class ApiError(SharedError):
    """Raised by an API route or dependency to refuse a call; answered as `{"code", "message"}` JSON."""

    status_code = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotAuthenticated(ApiError):
    """Raised when a call carries no bearer token the township or county recognises as live."""

    status_code = 401


class Forbidden(ApiError):
    """Raised when the token's staff member's role (or the tier's authority) does not allow the call."""

    status_code = 403


class NotFound(ApiError):
    """Raised when the matter, key or notice named in the path does not exist."""

    status_code = 404


class Conflict(ApiError):
    """Raised when the matter changed since the caller read it, or its state does not allow the call."""

    status_code = 409


class Unprocessable(ApiError):
    """Raised when the request is well-formed but the rules refuse what it asks."""

    status_code = 422


class TokenError(SharedError):
    """Raised by the token store for a request it cannot carry out (creation, revocation)."""
