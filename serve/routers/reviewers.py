"""The reviewers' pages: the queue, one inspection at a time, and the decision that loads the next.

    GET  /review                         what waits (filters, counts), most uncertain first
    GET  /review/next                    claim the next item and open it
    GET  /review/items/{id}              one inspection: photo, boxes, metadata; claimed while open
    GET  /review/items/{id}/image        the photo (session, not API key)
    POST /review/items/{id}/decision     confirmed | rejected | unusable, with the boxes as left
    POST /review/items/{id}/skip         give it back and go on

The filters travel in the query string from page to page, so "next" keeps
to the fraction, truck, days, district and route a reviewer chose. Skipped items are listed
there too (up to MAX_SKIPPED), so the next item is another one.
"""

from __future__ import annotations

import json
import mimetypes
from datetime import date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from serve import review
from serve.access_log import NOT_CACHED, record_access
from serve.db import Bin, Inspection
from serve.registry import districts_and_routes
from serve.dependencies import Sessions, Settings, Store, loaded_detector
from serve.detector import Detector
from serve.notices import NoticeIssuer
from serve.pages import PageError, Reviewer, checked_form, render
from serve.routers.notices import NoticeSettings, decided_notice_messages, decided_notice_param, outcome_param
from serve.review import Box, ChangedMeanwhile, Decision, NotClaimed, QueueFilter, QueuePolicy, ReviewError

router = APIRouter(include_in_schema=False)

QUEUE_PAGE_SIZE = 50
MAX_SKIPPED = 50
DECIDED_MESSAGES = {
    "confirmed": "Confirmed. Here is the next one.",
    "rejected": "Rejected. Here is the next one.",
    "unusable": "Marked unusable. Here is the next one.",
    "skipped": "Skipped. Here is the next one.",
}


async def page_detector(detector: Annotated[Detector | None, Depends(loaded_detector)]) -> Detector:
    """The model's class list and fraction policy; the pages need them to show and check boxes."""
    if detector is None:
        raise PageError(503, "The model is not loaded", "Reviews need the model's class list. Check /health/ready and the service log, then reload.")
    return detector


PageDetector = Annotated[Detector, Depends(page_detector)]


def queue_policy(settings, detector: Detector) -> QueuePolicy:
    return QueuePolicy(detector.policy.threshold, settings.review_qc_sample_rate, timedelta(minutes=settings.review_claim_minutes))


def _day(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
        datetime.combine(day, datetime.min.time()) + timedelta(days=1)  # the filter's end of day must exist
        return day
    except (ValueError, OverflowError):
        raise PageError(400, "Bad filter", f"{name} {value!r} is not a date (YYYY-MM-DD).") from None


def read_filter(request: Request) -> QueueFilter:
    q = request.query_params
    return QueueFilter(
        fraction=q.get("fraction") or None,
        truck_id=(q.get("truck_id") or "").strip() or None,
        captured_from=_day(q.get("captured_from"), "captured_from"),
        captured_to=_day(q.get("captured_to"), "captured_to"),
        district=q.get("district") or None,
        route=q.get("route") or None,
    )


def filter_params(flt: QueueFilter) -> dict[str, str]:
    out = {"fraction": flt.fraction, "truck_id": flt.truck_id, "captured_from": flt.captured_from, "captured_to": flt.captured_to,
           "district": flt.district, "route": flt.route}  # fmt: skip
    return {k: str(v) for k, v in out.items() if v}


def skipped_ids(request: Request) -> list[str]:
    return [s for s in request.query_params.get("skipped", "").split(",") if s][:MAX_SKIPPED]


def query(params: dict[str, str]) -> str:
    return f"?{urlencode(params)}" if params else ""


@router.get("/review", name="review_queue")
async def queue_page(request: Request, info: Reviewer, sessions: Sessions, settings: Settings, detector: PageDetector):
    flt = read_filter(request)
    policy = queue_policy(settings, detector)

    def load():
        items = review.queue(sessions, policy, flt, QUEUE_PAGE_SIZE)
        places = districts_and_routes(sessions)
        return items, review.counts(sessions, policy, flt), review.claim_holders(sessions, [row.id for row in items]), places

    items, counts, holders, (districts, routes) = await run_in_threadpool(load)
    for row in items:  # what the model found, for the list
        labels = [d["label"] for d in row.detections or []]
        row.found = ", ".join(sorted(set(labels))) or "—"
    params = filter_params(flt)
    messages = []
    decided = request.query_params.get("decided")
    if decided in DECIDED_MESSAGES:
        messages.append(("success", DECIDED_MESSAGES[decided].split(".")[0] + "."))
    messages += decided_notice_messages(request)
    if request.query_params.get("empty"):
        messages.append(("info", "Nothing left to review under these filters."))
    return render(request, "queue.html", {
        "active": "queue", "items": items, "counts": counts, "holders": holders, "flt": flt, "filter_params": params,
        "filter_query": query(params), "fractions": detector.policy.fractions, "threshold": policy.threshold,
        "limit": QUEUE_PAGE_SIZE, "messages": messages, "districts": districts, "routes": routes,
    }, info=info)  # fmt: skip


@router.get("/review/next", name="review_next")
async def next_item(request: Request, info: Reviewer, sessions: Sessions, settings: Settings, detector: PageDetector):
    flt = read_filter(request)
    skipped = skipped_ids(request)
    found = await run_in_threadpool(review.claim_next, sessions, info.account, queue_policy(settings, detector), flt, None, skipped)
    params = filter_params(flt)
    decided = request.query_params.get("decided")
    if found is None:  # the last decision's message goes along: the reviewer sees it was stored
        last = {"decided": decided, **decided_notice_param(request)} if decided in DECIDED_MESSAGES else {}
        return RedirectResponse(f"/review{query({**params, 'empty': '1', **last})}", status_code=303)
    extra = {"skipped": ",".join(skipped)} if skipped else {}
    if request.query_params.get("decided") in DECIDED_MESSAGES:
        extra["decided"] = request.query_params["decided"]
        extra.update(decided_notice_param(request))
    return RedirectResponse(f"/review/items/{found.id}{query({**params, **extra})}", status_code=303)


def editor_boxes(row: Inspection) -> list[dict]:
    """The boxes to start from: the last review's, else the model's (each remembering which detection it was)."""
    if row.reviewed_detections is not None:
        return [{"label": d["label"], "box": d["box"], "score": d.get("score"), "origin": d.get("origin")} for d in row.reviewed_detections]
    return [{"label": d["label"], "box": d["box"], "score": d.get("score"), "origin": i} for i, d in enumerate(row.detections or [])]


@router.get("/review/items/{inspection_id}", name="review_item")
async def item_page(request: Request, inspection_id: str, info: Reviewer, sessions: Sessions, settings: Settings, store: Store,
                    detector: PageDetector):  # fmt: skip
    policy = queue_policy(settings, detector)

    def load():
        with sessions() as s:
            row = s.get(Inspection, inspection_id)
            registered = s.get(Bin, row.bin_id) if row is not None and row.bin_id is not None else None
        if row is None:
            return None, False, None, None
        claimed = row.review_state is None and review.claim(sessions, row.id, info.account, policy.claim_ttl)
        holder = None
        if row.review_state is None and not claimed:
            holder = review.claim_holders(sessions, [row.id]).get(row.id)
        return row, claimed, holder, registered

    row, editable, holder, registered = await run_in_threadpool(load)
    if row is None:
        raise PageError(404, "No such inspection", f"There is no inspection {inspection_id}.")
    trail = await run_in_threadpool(review.trail, sessions, row.id)
    params = {**filter_params(read_filter(request)), **({"skipped": ",".join(skipped_ids(request))} if skipped_ids(request) else {})}
    messages = []
    decided = request.query_params.get("decided")
    if decided in DECIDED_MESSAGES:
        messages.append(("success", DECIDED_MESSAGES[decided]))
    messages += decided_notice_messages(request)
    readonly_reason = (
        f"Reviewed already ({row.review_state}); shown read-only." if row.review_state
        else f"{holder or 'Another reviewer'} is reviewing this one right now; shown read-only."
    )  # fmt: skip
    editor = {
        "boxes": editor_boxes(row), "classes": detector.class_names, "editable": editable,
        "contaminants": sorted(detector.policy.contaminants(row.fraction)),
    }  # fmt: skip
    return render(request, "item.html", {
        "row": row, "editable": editable, "readonly_reason": readonly_reason, "trail": trail, "editor": editor,
        "image_available": store.image_file(row) is not None, "filter_query": query(params), "messages": messages,
        # Still linked when the registry lists another fraction (serve/bin_link.py); the reviewer should know.
        "registered_fraction": registered.fraction if registered is not None and registered.fraction != row.fraction else None,
    }, info=info)  # fmt: skip


@router.get("/review/items/{inspection_id}/image", name="review_image")
async def item_image(inspection_id: str, info: Reviewer, sessions: Sessions, store: Store):
    def load() -> tuple[bytes, str]:
        with sessions() as s:
            row = s.get(Inspection, inspection_id)
        if row is None:
            raise PageError(404, "No such inspection", f"There is no inspection {inspection_id}.")
        gone = PageError(410, "Photo deleted", "This inspection's photo is no longer stored: retention deleted it. Its verdict and review remain.")
        if row.image_path is None:
            raise gone
        path = store.image_dir / row.image_path
        # Read here, not streamed by FileResponse later: retention may delete the file at any moment, and a file that
        # vanished between a check and FileResponse's own stat() was a 500.
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise gone from None
        # Logged before the photo leaves (serve/access_log.py).
        record_access(sessions, actor_kind="user", actor=info.account.name, inspection_id=row.id, bin_id=row.bin_id, what="image")
        return content, path.suffix.lower()

    content, suffix = await run_in_threadpool(load)
    media_type = "image/jpeg" if suffix in (".jpg", ".jpeg") else mimetypes.types_map.get(suffix, "application/octet-stream")
    return Response(content, media_type=media_type, headers=NOT_CACHED)


def parse_boxes(raw: str | None) -> list[Box] | None:
    """The editor's JSON, or None when the page sent none (no script: keep the model's boxes)."""
    if not raw:
        return None
    try:
        items = json.loads(raw)
        if not isinstance(items, list):
            raise ValueError("not a list")
        return [
            Box(str(b["label"]), tuple(float(v) for v in b["box"]), None if b.get("score") is None else float(b["score"]),
                None if b.get("origin") is None else int(b["origin"]))  # fmt: skip
            for b in items
        ]
    except (ValueError, TypeError, KeyError) as err:
        raise PageError(400, "The boxes could not be read", f"The page sent boxes that are not valid ({err}). Reload the page and try again.") from None


@router.post("/review/items/{inspection_id}/decision", name="review_decide")
async def decide(request: Request, inspection_id: str, info: Reviewer, sessions: Sessions, detector: PageDetector, notice_config: NoticeSettings):
    form = await checked_form(request, info)
    boxes = parse_boxes(form.get("boxes"))
    for b in boxes or []:
        if len(b.box) != 4:
            raise PageError(400, "The boxes could not be read", "Every box needs four coordinates.")
    seen = form.get("state_before", "")  # what the page showed: "" for not reviewed
    decision = Decision(form.get("decision", ""), boxes, (form.get("note") or "").strip()[:500] or None, expected_state=seen or None)
    try:
        decided = await run_in_threadpool(review.decide, sessions, inspection_id, info.account, decision, detector.class_names, None,
                                          NoticeIssuer(notice_config, detector.policy))  # the resident's notice, in the same transaction
    except ChangedMeanwhile as err:
        raise PageError(409, "Not stored: someone decided it meanwhile", f"{err}. Your decision was not stored.") from None
    except NotClaimed as err:
        raise PageError(409, "Not stored: this inspection is no longer yours", f"{err}. Your decision was not stored.") from None
    except ReviewError as err:
        raise PageError(400, "Not stored: the decision is incomplete", f"{err}. Nothing was stored.") from None
    params = {**filter_params(read_filter(request)), "decided": decision.state, **outcome_param(decided.consequence)}
    if skipped_ids(request):
        params["skipped"] = ",".join(skipped_ids(request))
    return RedirectResponse(f"/review/next{query(params)}", status_code=303)


@router.post("/review/items/{inspection_id}/skip", name="review_skip")
async def skip(request: Request, inspection_id: str, info: Reviewer, sessions: Sessions):
    await checked_form(request, info)
    await run_in_threadpool(review.release, sessions, inspection_id, info.account)
    skipped = [inspection_id, *[s for s in skipped_ids(request) if s != inspection_id]][:MAX_SKIPPED]
    params = {**filter_params(read_filter(request)), "skipped": ",".join(skipped), "decided": "skipped"}
    return RedirectResponse(f"/review/next{query(params)}", status_code=303)
