"""The SMS gateway's HTTP hook for villagers' 好差评 replies (`docs/evaluation.md`, "SMS replies").

The gateway POSTs each reply to `/public/sms-reply` with the sender's number and the text and sends
back the Chinese reply in the response body: the same rules as `town-center evaluation sms`
(`Evaluations.rate_by_sms`). It authenticates with a shared secret made by `town-center evaluation
sms-secret`; the township keeps only its SHA-256, and compares in constant time, so neither a copy of
the database nor timing gives the secret away. Requests are rate-limited per calling address (before
the secret is checked, so guessing is slow too) and per sender number (one villager's phone cannot
flood the 回访 list or the log).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from shared.clock import Clock
from shared.console.ratelimit import RateLimiter

__all__ = ["SMS_HOOK_PATH", "SECRET_HEADER", "SECRET_META", "new_sms_secret", "sms_secret_matches", "add_sms_hook_route"]

SMS_HOOK_PATH = "/public/sms-reply"
SECRET_HEADER = "x-sms-secret"
SECRET_META = "sms_hook_secret_sha256"
_MAX_TEXT = 500       # an SMS reply; anything longer is not one


def new_sms_secret(store: Any) -> str:
    """A fresh shared secret for the gateway (shown once); the previous one stops working."""
    secret = secrets.token_urlsafe(32)
    store.set_meta(SECRET_META, hashlib.sha256(secret.encode()).hexdigest())
    return secret


def sms_secret_matches(store: Any, presented: str) -> bool:
    kept = store.get_meta(SECRET_META)
    if not kept or not presented:
        return False
    return hmac.compare_digest(hashlib.sha256(presented.encode()).hexdigest().encode(), kept.encode())


def add_sms_hook_route(web: FastAPI, evaluations: Any, clock: Clock, *, per_address: RateLimiter | None = None,
                       per_sender: RateLimiter | None = None) -> None:
    """`POST /public/sms-reply` (form or JSON: `from`, `text`; header `X-SMS-Secret`). Answers 200 with
    the reply to send the villager, 401 for a wrong secret, 400 for a malformed call, 429 when too many."""
    by_address = per_address or RateLimiter(capacity=120, refill_per_second=2.0, clock=clock)
    by_sender = per_sender or RateLimiter(capacity=5, refill_per_second=1 / 60, clock=clock)
    store = evaluations.store

    def text(body: str, status: int, retry_after: str | None = None) -> PlainTextResponse:
        headers = {"Retry-After": retry_after} if retry_after else None
        return PlainTextResponse(body, status_code=status, headers=headers)

    @web.post(SMS_HOOK_PATH)
    async def sms_reply(request: Request) -> PlainTextResponse:
        address = request.client.host if request.client is not None else "-"
        decision = by_address.check("addr:" + address)
        if not decision.allowed:
            return text("短信接口调用过于频繁，请稍后重试", 429, by_address.retry_after_header(decision))
        secret = request.headers.get(SECRET_HEADER, "")
        if not secret and request.headers.get("authorization", "").lower().startswith("bearer "):
            secret = request.headers["authorization"][7:].strip()
        if not await run_in_threadpool(sms_secret_matches, store, secret):
            return text("短信接口口令不正确", 401)
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                data = await request.json()
            else:
                data = dict(await request.form())
        except ValueError:
            return text("短信接口请求格式有误：请以表单或 JSON 提交 from 和 text", 400)
        sender = str(data.get("from", "") if isinstance(data, dict) else "").strip()
        body = str(data.get("text", "") if isinstance(data, dict) else "")
        if not sender or len(sender) > 32 or len(body) > _MAX_TEXT:
            return text("短信接口请求缺少发信号码或短信内容过长", 400)
        decision = by_sender.check("from:" + "".join(ch for ch in sender if ch.isdigit())[-11:])
        if not decision.allowed:
            # Answered to the villager as well: the gateway sends it back like any reply.
            return text("您发送的评价短信过于频繁，请稍后再发", 429, by_sender.retry_after_header(decision))
        reply = await run_in_threadpool(evaluations.rate_by_sms, sender, body)
        return text(reply, 200)
