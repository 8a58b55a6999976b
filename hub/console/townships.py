"""乡镇接入 (`/townships`): the townships' link keys (approve a pending one after checking its
fingerprint, revoke with a reason) and the escalations the county refused."""
from __future__ import annotations

import logging
import re

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.console.app import KEY_MANAGERS, STAFF, Pages, read_form
from shared.clock import to_unix_ms
from shared.console import ConsoleSession, require_role
from shared.relay.errors import KeyStoreError
from shared.relay.ports import KeyState

__all__ = ["add_routes"]

log = logging.getLogger("hub.console.townships")


_HEX = re.compile(r"\b[0-9a-f]{8,}\b")


def _changed_by_zh(value: str, staff_labels: dict[str, str]) -> str:
    """Who changed a key's state, in words: a staff member by name, the system, the old key of a
    rotation, or the name typed after `--by` on the command line."""
    if value in staff_labels:
        return staff_labels[value]
    if value == "system":
        return "系统自动"
    if _HEX.fullmatch(value):
        return "由原密钥签名"
    return value


def add_routes(web: FastAPI, pages: Pages) -> None:
    app = pages.app
    store = app.store

    @web.get("/townships", response_class=HTMLResponse)
    def townships(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        keys = store.keys()
        # Pending first: they are what someone has to act on.
        keys.sort(key=lambda k: (k.state is not KeyState.PENDING, k.info.township_code, k.enrolled_at_ms))
        names = pages.township_names()
        staff_labels = pages.staff_labels()
        # Who from, by township name; the refused matter never by its id (the township holds it and was told).
        refused = [{"at": at, "township": names.get(actor.split(":", 1)[-1]) or "未登记名称的乡镇", "text": text}
                   for at, _matter_id, actor, text in app.handling.refused_escalations()]
        return pages.render(request, "townships.html", {
            "title": "乡镇接入", "nav_here": "townships", "keys": keys, "refused": refused,
            "changed_by": {k.key_id: _changed_by_zh(k.status_changed_by, staff_labels) for k in keys},
            "reasons": {k.key_id: _HEX.sub("", k.status_reason).strip() for k in keys},
            "can_manage": staff.role in KEY_MANAGERS, "pending": sum(1 for k in keys if k.state is KeyState.PENDING),
        })

    @web.post("/townships/{key_id}/{what}")
    async def key_action(request: Request, key_id: str, what: str,
                         staff: ConsoleSession = Depends(require_role(*KEY_MANAGERS))) -> Response:
        form = await read_form(request)
        now_ms = to_unix_ms(pages.now())
        try:
            if what == "approve":
                key = await run_in_threadpool(lambda: store.approve(key_id, by=staff.staff_id, now_ms=now_ms))
                notice = f"已批准{key.info.holder_name}的接入密钥，其上报记录此后予以签收"
            elif what == "revoke":
                reason = form.get("reason", "").strip()
                if not reason:
                    return pages.back("/townships", "吊销接入密钥须写明原因（如：服务器失窃、密钥泄露）")
                key = await run_in_threadpool(
                    lambda: store.revoke(key_id, by=staff.staff_id, reason=reason[:200], now_ms=now_ms))
                notice = f"已吊销{key.info.holder_name}的接入密钥，此后收到的记录一律拒收"
            else:
                return pages.message(request, "未知的操作")
        except KeyStoreError as exc:   # unknown key, or a state that does not allow it: the message is Chinese
            log.info("township key %s %s refused: %s", key_id, what, exc)
            return pages.back("/townships", str(exc) or "操作未成功")
        log.info("township key %s %s by %s", key_id, what, staff.staff_id)
        return pages.back("/townships", notice)
