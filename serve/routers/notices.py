"""Notices and bins for the waste company's staff (reviewers and admins; session cookie).

    GET  /notices                     bins per escalation level: last finding, notices in their record, link to each bin
    GET  /notices/{id}                the letter as HTML (logged in the access log)
    GET  /notices/{id}.pdf            the same letter as PDF (logged)
    POST /notices/{id}/withdraw       withdraw it (admins; e.g. an appeal upheld): it stops counting for escalation
    GET  /bins/{rfid}                 a bin's history: inspections, review states, links, notices, level, reset date

After a decision the review pages say what it meant for the household (a
notice issued, or none for an uncertain link): `outcome_param` puts that in
the redirect's query, `decided_notice_messages` turns it into a message.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from serve import letters, notices
from serve.access_log import record_access
from serve.dependencies import Sessions, Settings
from serve.notice_config import NoticeConfig
from serve.notices import NoticeError, NoticeOutcome, NoSuchNotice
from serve.pages import PAGE_HEADERS, Admin, PageError, Reviewer, checked_form, render

router = APIRouter(include_in_schema=False)

NOTICE_PARAM = "notice"
UNCERTAIN = "uncertain"
WITHDRAWN_DONE = "withdrawn"


async def get_notice_config(request: Request) -> NoticeConfig:
    return request.app.state.notice_config


NoticeSettings = Annotated[NoticeConfig, Depends(get_notice_config)]


def outcome_param(outcome: NoticeOutcome | None) -> dict[str, str]:
    """The decision's consequence for the next page's message: a notice's level, or an uncertain link; else nothing."""
    if outcome is None:
        return {}
    if outcome.issued:
        return {NOTICE_PARAM: str(outcome.notice.level)}
    if outcome.why_not == "uncertain_link":
        return {NOTICE_PARAM: UNCERTAIN}
    return {}


def decided_notice_param(request: Request) -> dict[str, str]:
    """The parameter as received, to pass on to the next page (only the values outcome_param makes)."""
    value = request.query_params.get(NOTICE_PARAM, "")
    return {NOTICE_PARAM: value} if value == UNCERTAIN or value.isdigit() else {}


def decided_notice_messages(request: Request) -> list[tuple[str, str]]:
    value = decided_notice_param(request).get(NOTICE_PARAM)
    if value == UNCERTAIN:
        return [("warning", "No notice to the household: the photo's link to the bin is uncertain, and uncertain links never escalate.")]
    if value:
        return [("info", f"A notice of level {value} was issued to the household (Notices lists it).")]
    return []


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d") if at else "—"


@router.get("/notices", name="notices_by_level")
async def by_level_page(request: Request, info: Reviewer, sessions: Sessions, config: NoticeSettings):
    levels = await run_in_threadpool(notices.by_level, sessions, config)
    titles = _level_titles(config)
    return render(request, "notices.html", {"active": "notices", "levels": levels, "titles": titles, "when": _when,
                                            "fractions": config.fractions}, info=info)  # fmt: skip


def _level_titles(config: NoticeConfig) -> dict[int, str]:
    """Level number -> its titles across fractions (the same in the shipped configuration), for headings."""
    titles: dict[int, list[str]] = {}
    for rules in config.fractions.values():
        for n, level in enumerate(rules.levels, start=1):
            if level.title not in titles.setdefault(n, []):
                titles[n].append(level.title)
    return {n: " / ".join(names) for n, names in titles.items()}


async def _letter(sessions, settings, config: NoticeConfig, notice_id: str, info) -> letters.Letter:
    def load():
        notice = notices.get(sessions, notice_id)
        letter = letters.compose(sessions, settings.image_dir, config, notice)
        # Logged before the letter (with its evidence crop) leaves (serve/access_log.py).
        record_access(sessions, actor_kind="user", actor=info.account.name, inspection_id=notice.inspection_id, bin_id=notice.bin_id,
                      what="notice")  # fmt: skip
        return letter

    try:
        return await run_in_threadpool(load)
    except NoSuchNotice:
        raise PageError(404, "No such notice", f"There is no notice {notice_id}.") from None
    except letters.LetterError as err:
        raise PageError(500, "The letter could not be made", str(err)) from None


# Declared before /notices/{notice_id}, which would otherwise take "ID.pdf" as an id.
@router.get("/notices/{notice_id}.pdf", name="notice_pdf")
async def notice_pdf(notice_id: str, info: Reviewer, sessions: Sessions, settings: Settings, config: NoticeSettings):
    letter = await _letter(sessions, settings, config, notice_id, info)
    pdf = await run_in_threadpool(letter.pdf)
    return Response(pdf, media_type="application/pdf", headers={
        **PAGE_HEADERS, "Content-Disposition": f'inline; filename="{letter.file_stem}.pdf"'})  # fmt: skip


@router.get("/notices/{notice_id}", name="notice_html")
async def notice_html(notice_id: str, info: Reviewer, sessions: Sessions, settings: Settings, config: NoticeSettings):
    letter = await _letter(sessions, settings, config, notice_id, info)
    return HTMLResponse(letter.html, headers=PAGE_HEADERS)


@router.post("/notices/{notice_id}/withdraw", name="notice_withdraw")
async def withdraw(request: Request, notice_id: str, info: Admin, sessions: Sessions):
    await checked_form(request, info)
    try:
        notice = await run_in_threadpool(notices.withdraw, sessions, notice_id, info.account.name)
    except NoSuchNotice:
        raise PageError(404, "No such notice", f"There is no notice {notice_id}.") from None
    except NoticeError as err:
        raise PageError(409, "Not withdrawn", f"{err}.") from None
    return RedirectResponse(f"/bins/{notice.bin_id}?done={WITHDRAWN_DONE}", status_code=303)


@router.get("/bins/{rfid}", name="bin_history")
async def bin_page(request: Request, rfid: str, info: Reviewer, sessions: Sessions, config: NoticeSettings):
    try:
        found = await run_in_threadpool(notices.history, sessions, config, rfid)
    except NoticeError as err:
        raise PageError(404, "Unknown bin", f"{str(err)[0].upper()}{str(err)[1:]}.") from None
    messages = [("success", "Notice withdrawn; it no longer counts for the bin's escalation.")] if request.query_params.get("done") == WITHDRAWN_DONE else []
    return render(request, "bin.html", {"active": "notices", "bin": found, "config": config, "when": _when, "messages": messages,
                                        "now": datetime.now(timezone.utc)}, info=info)  # fmt: skip
