"""Logging in and out of the people's pages (reviewers, admins).

The login form itself is CSRF-protected too (a forged login would put a
victim in the attacker's account): GET /login sets a random token in a
short-lived cookie and the form; POST /login wants both to match.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from serve import accounts
from serve.accounts import LockoutPolicy, LoginRefused
from serve.dependencies import Sessions, Settings
from serve.pages import CSRF_FIELD, SESSION_COOKIE, PageError, current_session, read_form, render, safe_next, set_cookie

router = APIRouter(include_in_schema=False)  # pages, not API: kept out of the trucks' OpenAPI document

LOGIN_CSRF_COOKIE = "binsight_login_csrf"
HOME = "/review"


def lockout(settings) -> LockoutPolicy:
    return LockoutPolicy(settings.login_max_failures, settings.login_lock_s, settings.login_max_lock_s)


def login_page(request: Request, next_url: str, status: int = 200, error: str | None = None, username: str | None = None):
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", {
        "login_csrf": token, "next_url": next_url, "username": username, "messages": [("error", error)] if error else [],
    }, status)  # fmt: skip
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("/", name="home")
async def home():
    """People who open the service's address land on the review queue (or its login)."""
    return RedirectResponse(HOME, status_code=303)


@router.get("/login", name="login_form")
async def login_form(request: Request, sessions: Sessions, next: str | None = None):
    target = safe_next(next, HOME)
    if await current_session(request, sessions) is not None:
        return RedirectResponse(target, status_code=303)
    return login_page(request, target)


@router.post("/login", name="login")
async def login(request: Request, sessions: Sessions, settings: Settings):
    form = await read_form(request)
    target = safe_next(form.get("next"), HOME)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not accounts.csrf_matches(expected, form.get(CSRF_FIELD)):
        raise PageError(403, "The form was refused", "Its security token (CSRF) is missing or stale. Open the login page again and retry.")
    username, password = form.get("username", "").strip(), form.get("password", "")
    if not username or not password:
        return login_page(request, target, 400, "Enter your user name and password.", username)
    outcome = await run_in_threadpool(accounts.authenticate, sessions, username, password, lockout(settings))
    if isinstance(outcome, LoginRefused):
        return login_page(request, target, 401, outcome.reason.capitalize() + ".", username)
    # A login in a browser that still holds a session ends that one: one person, one live session per browser.
    await run_in_threadpool(accounts.end_session, sessions, request.cookies.get(SESSION_COOKIE))
    token, _ = await run_in_threadpool(accounts.start_session, sessions, outcome, timedelta(hours=settings.session_hours))
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token, max_age=int(settings.session_hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", name="logout")
async def logout(request: Request, sessions: Sessions):
    info = await current_session(request, sessions)
    if info is not None:
        form = await read_form(request)
        if not accounts.csrf_matches(info.csrf_token, form.get(CSRF_FIELD)):
            raise PageError(403, "The form was refused", "Its security token (CSRF) is missing or does not match your session.")
        await run_in_threadpool(accounts.end_session, sessions, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
