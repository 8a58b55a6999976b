"""群众签收评价 (`/matters/{ref}/signoff`): the villager rates the service and confirms receipt by a
drawn signature, a photo of the signed slip, a fingerprint or a witness."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from village_agent.domain import RATING_ZH
from village_agent.errors import FieldProblem, FormError
from village_agent.services import RATINGS, Confirmation
from village_agent.ui.pages import Pages, data_url_png, errors_by_field, upload

__all__ = ["router"]

RATING_CHOICES = [(key, RATING_ZH[value]) for key, value in RATINGS.items()]
CONFIRM_METHOD_ZH = {"drawn_signature": "在框内签名", "photo_of_form": "拍摄签了字的签收单",
                     "fingerprint": "按手印（拍摄按了手印的签收单）", "witness": "见证人证明"}


def router(pages: Pages) -> APIRouter:
    service = pages.service
    routes = APIRouter()

    @routes.get("/matters/{matter_ref}/signoff", response_class=HTMLResponse)
    async def signoff_page(request: Request, matter_ref: str) -> Response:
        return _render_signoff(request, service.resolve_matter(matter_ref), values={}, problems=[])

    def _render_signoff(request: Request, matter_id: str, *, values: dict[str, str], problems: list[FieldProblem],
                        status_code: int = 200) -> HTMLResponse:
        state = service.store.matter_state(matter_id)
        item = service.catalog.item(state.catalog_code) if state.catalog_code in service.catalog else None
        return pages.render(request, "signoff.html", status_code=status_code, state=state, item=item,
                            applicant=service.applicant(matter_id), ratings=RATING_CHOICES, values=values,
                            errors=errors_by_field(problems), problems=problems, confirm_methods=CONFIRM_METHOD_ZH,
                            lookup_code=service.store.lookup_code_of(matter_id))

    @routes.post("/matters/{matter_ref}/signoff")
    async def signoff(request: Request, matter_ref: str) -> Response:
        form = await pages.read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        values = {k: str(form.get(k, "")) for k in ("rating", "comment", "method", "witness_name", "witness_statement")}
        try:
            method = values["method"] or ("drawn_signature" if form.get("signature_data") else "")
            if method == "drawn_signature":
                evidence = data_url_png(str(form.get("signature_data", "")), "signature", "签收确认")
            elif method in ("photo_of_form", "fingerprint"):
                evidence = await upload(form, "evidence_file")
            else:
                evidence = b""
            service.sign_off(matter_id, values["rating"], values["comment"], confirmation=Confirmation(
                method, evidence, values["witness_name"], values["witness_statement"]))
        except FormError as exc:
            return _render_signoff(request, matter_id, values=values, problems=exc.problems, status_code=422)
        return RedirectResponse(f"/matters/{matter_id}?done=signoff", status_code=303)

    return routes
