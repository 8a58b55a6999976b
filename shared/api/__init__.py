"""The JSON API foundation the township and the county mount at `/api` beside their consoles.

* `ApiTokens` (`tokens`): per-staff bearer tokens, SHA-256 at rest, expiring and revocable.
* `create_api_app`, `caller`, `require` (`web`): the FastAPI app with one error body
  (`{"code", "message"}`), bearer authentication and the console's role rule.
* `add_token_commands` (`cli`): `staff token create|list|revoke` for a tier's CLI.

A tier's API uses it like this::

    api = create_api_app(title="乡镇便民服务中心接口", description="…", tokens=ApiTokens(engine, clock),
                         errors=[(UnknownMatter, 404, "matter_not_found"), (ConcurrentEditError, 409, "version_conflict")])

    @api.get("/matters", summary="收件箱")
    def inbox(who: ApiCaller = Depends(require(Role.OPERATOR, Role.DIRECTOR))) -> Inbox: ...

    console_app.mount("/api", api)      # the console's middleware must treat "/api" as public (see `web`)
"""
from __future__ import annotations

from shared.api.errors import ApiError, Conflict, Forbidden, NotAuthenticated, NotFound, TokenError, Unprocessable
from shared.api.tokens import ApiCaller, ApiTokens, IssuedToken, TokenInfo, api_token, create_api_tables
from shared.api.web import ERROR_RESPONSES, ErrorBody, caller, create_api_app, require, scrub

__all__ = ["ApiError", "Conflict", "Forbidden", "NotAuthenticated", "NotFound", "TokenError", "Unprocessable",
           "ApiCaller", "ApiTokens", "IssuedToken", "TokenInfo", "api_token", "create_api_tables",
           "ERROR_RESPONSES", "ErrorBody", "caller", "create_api_app", "require", "scrub"]
