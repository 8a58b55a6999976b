"""Errors raised by `shared.console`, the staff web console foundation.

Hierarchy::

    ConsoleError (SharedError)
    ├── StaffInputError         a login name, display name or role given to an account action is invalid
    │   └── PasswordPolicyError     a new password breaks the policy (shorter than 12 characters, common, guessable)
    ├── StaffExistsError        `create_staff` names a login that is already taken
    ├── UnknownStaffError       an account action names a login that does not exist
    ├── WebSettingError         a web server's settings are refused: an allowed host name or trusted proxy
    │                           that is not one, or plain text off loopback without --insecure-plaintext
    ├── LoginRefusedError       sign-in refused; the same text whether or not the account exists
    │   ├── AccountLockedError      too many failures for this login name; carries `unlock_at`
    │   └── AccountDisabledError    the password was right but the account has been disabled
    └── ConsoleHTTPError        a web request is refused; carries the HTTP `status_code`
        ├── NotSignedInError        no valid session: redirect to /login (pages) or 401 (API)
        ├── ForbiddenError          signed in, but the role may not do this (403)
        ├── CsrfError               missing or wrong CSRF token (403)
        ├── OriginError             the Origin header names another site (403)
        ├── RequestTooLargeError    a form too large to check for its CSRF token (413)
        └── RateLimitedError        one client asked too often (429); carries `retry_after_s`

`ConsoleError` derives from `shared.errors.SharedError`, so `shared.cli_common.run` prints it as a
Chinese message with exit status 2. Every message is Chinese: staff and villagers read them.
"""
from __future__ import annotations

import datetime as dt

from shared.errors import SharedError

__all__ = [
    "ConsoleError", "StaffInputError", "PasswordPolicyError", "StaffExistsError", "UnknownStaffError",
    "WebSettingError", "LoginRefusedError", "AccountLockedError", "AccountDisabledError", "ConsoleHTTPError", "NotSignedInError",
    "ForbiddenError", "CsrfError", "OriginError", "RequestTooLargeError", "RateLimitedError",
    "LOGIN_REFUSED_ZH",
]

# One text for "no such account" and "wrong password": telling them apart would let anyone probe
# which login names exist.
LOGIN_REFUSED_ZH = "登录名或密码错误。"


class ConsoleError(SharedError):
    """Base of every error raised by `shared.console`."""


class StaffInputError(ConsoleError):
    """Raised when a login name, display name or role given to an account action is invalid."""


class PasswordPolicyError(StaffInputError):
    """Raised when a new password breaks the password policy."""


class StaffExistsError(ConsoleError):
    """Raised by `create_staff` when the login name is already taken."""

    def __init__(self, staff_id: str) -> None:
        super().__init__(f"登录名“{staff_id}”已被使用")
        self.staff_id = staff_id


class UnknownStaffError(ConsoleError):
    """Raised when an account action (not sign-in) names a login that does not exist."""

    def __init__(self, staff_id: str) -> None:
        super().__init__(f"没有登录名为“{staff_id}”的工作人员账号")
        self.staff_id = staff_id


class WebSettingError(ConsoleError):
    """Raised at start-up when a web server's settings are refused: an allowed host name or a trusted
    proxy that is not one, or a server that would speak plain text off loopback without
    `--insecure-plaintext`."""


class LoginRefusedError(ConsoleError):
    """Raised by `authenticate` when sign-in is refused. The message never says whether the account exists."""

    def __init__(self, message: str = LOGIN_REFUSED_ZH) -> None:
        super().__init__(message)


class AccountLockedError(LoginRefusedError):
    """Raised while a login name is locked after repeated failures; `unlock_at` is when it opens again.

    Unknown login names are counted and locked exactly like real ones, so this says nothing about existence.
    """

    def __init__(self, unlock_at: dt.datetime, message: str) -> None:
        super().__init__(message)
        self.unlock_at = unlock_at


class AccountDisabledError(LoginRefusedError):
    """Raised when the password was right but the account is disabled (only its holder can learn this)."""

    def __init__(self) -> None:
        super().__init__("该账号已停用，请联系系统管理员。")


class ConsoleHTTPError(ConsoleError):
    """A refused web request; the handlers `install_console` registers turn it into a Chinese page or JSON."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotSignedInError(ConsoleHTTPError):
    """No valid session: pages redirect to the login form, API calls get 401."""

    status_code = 401

    def __init__(self, message: str = "请先登录。") -> None:
        super().__init__(message)


class ForbiddenError(ConsoleHTTPError):
    """Signed in, but the staff member's role may not do this."""

    status_code = 403

    def __init__(self, message: str = "您没有权限执行此操作。") -> None:
        super().__init__(message)


class CsrfError(ConsoleHTTPError):
    """A state-changing request without the session's CSRF token (or with a wrong one)."""

    status_code = 403

    def __init__(self, message: str = "安全校验失败：请求缺少有效的校验令牌。请刷新页面后重试。") -> None:
        super().__init__(message)


class OriginError(ConsoleHTTPError):
    """The request's Origin header names a different site than the one serving the console."""

    status_code = 403

    def __init__(self, message: str = "安全校验失败：请求来自其他网站，已拒绝。") -> None:
        super().__init__(message)


class RequestTooLargeError(ConsoleHTTPError):
    """A form too large to buffer while looking for its CSRF token."""

    status_code = 413

    def __init__(self, message: str = "提交的内容过大，已拒绝。") -> None:
        super().__init__(message)


class RateLimitedError(ConsoleHTTPError):
    """One client asked too often; `retry_after_s` is how long until a request will be accepted again."""

    status_code = 429

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"请求过于频繁，请在 {retry_after_s} 秒后再试。")
        self.retry_after_s = retry_after_s
