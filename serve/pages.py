"""What the people's pages share: templates, the logged-in person, CSRF checks, page-shaped errors.

Pages are rendered on the server (Jinja2, serve/templates/) with one small
script of our own (serve/static/review.js); nothing comes from a CDN and
nothing needs a build step. They authenticate with a session cookie only:
a truck's API key opens no page, and a session opens no truck endpoint.

Errors on pages are pages: a missing session redirects to the login form
(and back afterwards), a wrong role or a missing/forged CSRF token answers a
403 page that says so. The truck API's JSON errors are untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import sessionmaker

from serve import accounts
from serve.accounts import SessionInfo
from serve.dependencies import get_sessions

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
STATIC_DIR = HERE / "static"

SESSION_COOKIE = "binsight_session"
PAGE_HEADERS = {
    "Cache-Control": "no-store",  # pages show personal data and hold CSRF tokens
    # Only our own files run or load; no other site may frame a page (clickjacking a Confirm button).
    # Inline style attributes stay allowed: the photo's aspect ratio is one.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CSRF_FIELD = "csrf_token"
MAX_FORM_FIELDS = 20
MAX_FORM_BYTES = 256_000  # a decision's boxes as JSON; far more than a photo's worth of boxes


class LoginRequired(Exception):
    def __init__(self, next_url: str):
        self.next_url = next_url


class PageError(Exception):
    def __init__(self, status: int, heading: str, detail: str):
        self.status, self.heading, self.detail = status, heading, detail


def secure_cookies(request: Request) -> bool:
    """Secure cookies when the page was served over https (BINSIGHT_SECURE_COOKIES overrides, e.g. behind a proxy)."""
    setting = request.app.state.settings.secure_cookies
    return request.url.scheme == "https" if setting is None else setting


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure_cookies(request), path="/")


def safe_next(url: str | None, default: str) -> str:
    """Only a path on this site: an open redirect would let a phishing link borrow our login page."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return default


async def current_session(request: Request, sessions: Annotated[sessionmaker, Depends(get_sessions)]) -> SessionInfo | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await run_in_threadpool(accounts.session_for, sessions, token)


async def require_reviewer(request: Request, info: Annotated[SessionInfo | None, Depends(current_session)]) -> SessionInfo:
    """Any logged-in person (reviewers and admins review); else to the login form and back."""
    if info is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/review")
    return info


async def require_admin(info: Annotated[SessionInfo, Depends(require_reviewer)]) -> SessionInfo:
    if not info.account.is_admin:
        raise PageError(403, "Administrators only", f"{info.account.name} is a {info.account.role}; this page is for administrators.")
    return info


Reviewer = Annotated[SessionInfo, Depends(require_reviewer)]
Admin = Annotated[SessionInfo, Depends(require_admin)]


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields (bounded; files refused)."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_BYTES)
    except Exception as err:  # python-multipart/Starlette raise several types for malformed or oversized bodies
        raise PageError(400, "The form could not be read", str(err) or type(err).__name__) from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def checked_form(request: Request, info: SessionInfo) -> dict[str, str]:
    """The form, once its CSRF token matches the session's."""
    form = await read_form(request)
    if not accounts.csrf_matches(info.csrf_token, form.get(CSRF_FIELD)):
        raise PageError(403, "The form was refused", "Its security token (CSRF) is missing or does not match your session. Reload the page and try again.")
    return form


def render(request: Request, name: str, context: dict[str, Any], status: int = 200, info: SessionInfo | None = None) -> HTMLResponse:
    privacy = getattr(request.app.state, "privacy", None)
    base = {"account": info.account if info else None, "csrf_token": info.csrf_token if info else "", "messages": [], "active": None,
            "privacy_warning": privacy.unprotected_warning if privacy is not None else None}
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def install_page_handlers(app: FastAPI) -> None:
    async def login_required(request: Request, exc: LoginRequired):
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/')}", status_code=303)

    async def page_error(request: Request, exc: PageError):
        info = await current_session(request, request.app.state.sessions) if SESSION_COOKIE in request.cookies else None
        return render(request, "error.html", {"status": exc.status, "heading": exc.heading, "detail": exc.detail}, exc.status, info)

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(PageError, page_error)
