"""工作日历 (`/calendar`): which years deadlines are counted on a confirmed holiday table, and the
county's override file for coming years (uploaded or pasted; checked before it is kept)."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hub.bootstrap import CALENDAR_META, MAX_CALENDAR_BYTES
from hub.console.app import KEY_MANAGERS, STAFF, Pages
from hub.console.formatting import BEIJING, YEAR_SOURCE_ZH
from shared.calendar import WorkingCalendar, YearSource, parse_override_toml
from shared.clock import from_unix_ms
from shared.console import ConsoleSession, require_role
from shared.deadline_watch.calendar_follower import stamp_key
from shared.errors import CalendarOverrideError

__all__ = ["add_routes", "MAX_FILE_BYTES", "example_toml"]

log = logging.getLogger(__name__)

# A year's holidays fit in a few kilobytes; anything much larger is the wrong file.
MAX_FILE_BYTES = MAX_CALENDAR_BYTES


def example_toml(year: int) -> str:
    """A starting point for the coming year's file (shown beside the form, never saved as such)."""
    return (f'format = 1\nissued_by = "县政务服务中心"\n\n[year_{year}]\nconfirmed = false\n'
            f'holidays = [\n  {{ name = "元旦", date = {year}-01-01 }},\n'
            f'  {{ name = "春节", from = {year}-02-10, to = {year}-02-16 }},\n]\n'
            f'workdays = [\n  {{ name = "春节调休", date = {year}-02-07 }},\n]\n')


class _UploadProblem(Exception):
    pass


class _NotInForce(Exception):
    def __init__(self, calendar: WorkingCalendar) -> None:
        super().__init__("saved, not in force")
        self.calendar = calendar


async def _read_upload(upload: UploadFile) -> str:
    data = await upload.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _UploadProblem(f"上传的文件超过 {MAX_FILE_BYTES // 1024} KB，不像是工作日历文件，请核对后重新选择。")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _UploadProblem("上传的文件不是 UTF-8 编码的文本，请用记事本另存为 UTF-8 后重新上传。") from None


def add_routes(web: FastAPI, pages: Pages) -> None:
    app = pages.app

    def context(staff: ConsoleSession, text: str | None = None) -> dict[str, Any]:
        calendar = app.deadlines.calendar
        this_year = pages.now().astimezone(BEIJING).year
        saved = app.store.get_meta(CALENDAR_META)
        by, _, at_ms = app.store.get_meta(stamp_key(CALENDAR_META)).partition("|")
        try:
            overrides = parse_override_toml(saved, "县级工作日历文件") if saved else {}
            # Saved by `county-hub calendar` in another process: deadlines here count on the old
            # calendar until the running service takes it up (its next pass, within a second).
            pending = bool(overrides) and WorkingCalendar(overrides, calendar.office_hours).fingerprint != calendar.fingerprint
        except CalendarOverrideError:
            overrides, pending = {}, False
        years = []
        for year in range(this_year, this_year + 3):
            source = calendar.year_source(year)
            override = overrides.get(year) if source is not YearSource.LIBRARY else None
            years.append({"year": year, "source": source, "label": YEAR_SOURCE_ZH[source],
                          "confirmed": source.confirmed, "holidays": len(override.holidays) if override else 0,
                          "workdays": len(override.workdays) if override else 0,
                          "names": override.names if override else ()})
        return {
            "title": "工作日历", "nav_here": "calendar", "years": years, "library": calendar.library_years,
            "ignored": calendar.ignored_override_years, "saved_by": by,
            "saved_at": from_unix_ms(int(at_ms)) if at_ms.isdigit() else None,
            "text": saved if text is None else text, "example": example_toml(this_year + 1),
            "coming_year": this_year + 1, "can_upload": staff.role in KEY_MANAGERS, "pending": pending,
        }

    @web.get("/calendar", response_class=HTMLResponse)
    def calendar_page(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        return pages.render(request, "calendar.html", context(staff))

    @web.post("/calendar", response_class=HTMLResponse)
    async def upload(request: Request, staff: ConsoleSession = Depends(require_role(*KEY_MANAGERS))) -> Response:
        form = await request.form()
        text = str(form.get("toml_text", "") or "")
        upload_file = form.get("toml_file")
        try:
            # A chosen file wins over the text box: it is what the person just picked.
            if isinstance(upload_file, UploadFile) and upload_file.filename:
                text = await _read_upload(upload_file)
            if not text.strip():
                raise _UploadProblem("请选择工作日历文件，或把文件内容粘贴到文本框中。")
            calendar = await run_in_threadpool(save_override, text, staff.staff_id)
        except (_UploadProblem, CalendarOverrideError) as exc:
            # Shown with the text kept in the box, so the one wrong line can be fixed in place.
            ctx = context(staff, text)
            ctx["error"] = f"工作日历未保存：{exc}"
            return pages.render(request, "calendar.html", ctx, status_code=400)
        except _NotInForce as exc:
            calendar, in_force = exc.calendar, False
        else:
            in_force = True
        finally:
            await form.close()
        parts = [f"{y}年（{'已确认' if calendar.is_confirmed(y) else '草案'}）"
                 for y in sorted(parse_override_toml(text)) if y not in calendar.ignored_override_years]
        notice = "已保存工作日历：" + ("、".join(parts) or "无新增年份")
        if calendar.ignored_override_years:
            notice += "；" + "、".join(f"{y}年" for y in calendar.ignored_override_years) + "已有国务院通知，文件中的该年份未采用"
        if not in_force:
            notice += "。本次未能立即启用，重启县级服务后用于计算办理时限"
        log.info("calendar override uploaded by %s (in force: %s)", staff.staff_id, in_force)
        return pages.back("/calendar", notice)

    def save_override(text: str, by: str) -> WorkingCalendar:
        """`HubApp.set_calendar_override`, telling apart "saved but not in force in this process" (raised
        as `_NotInForce`) from "not saved": the file is kept before the running calendar is swapped, and
        a failure of the swap alone must not be reported as a refused file."""
        try:
            return app.set_calendar_override(text, by=by)
        except CalendarOverrideError:
            raise
        except Exception as exc:
            if app.store.get_meta(CALENDAR_META) != text:
                raise
            log.exception("calendar override saved but not put in force")
            raise _NotInForce(WorkingCalendar(parse_override_toml(text))) from exc
