"""Administration pages: admins manage the reviewer and admin accounts in the browser.

    GET  /admin/users                    the accounts, a form for a new one
    POST /admin/users                    create (name, role, password)
    POST /admin/users/{name}/state       disable or enable
    POST /admin/users/{name}/password    reset the password (ends the person's sessions)
"""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from serve import accounts
from serve.accounts import MIN_PASSWORD_LENGTH, AccountError
from serve.db import as_utc
from serve.dependencies import Sessions
from serve.pages import Admin, checked_form, render

router = APIRouter(include_in_schema=False)

DONE = {"created": "Account created.", "disabled": "Account disabled; its sessions ended.", "enabled": "Account enabled.",
        "password": "Password reset; the person's sessions ended."}  # fmt: skip


async def users_page(request: Request, info, sessions, status: int = 200, error: str | None = None):
    users = await run_in_threadpool(accounts.list_users, sessions)
    now = datetime.now(timezone.utc)
    for u in users:
        locked = as_utc(u.locked_until)
        u.locked = bool(locked and locked > now)
    messages = [("error", error)] if error else []
    done = request.query_params.get("done")
    if done in DONE:
        messages.append(("success", DONE[done]))
    return render(request, "users.html", {"active": "users", "users": users, "min_password": MIN_PASSWORD_LENGTH, "messages": messages},
                  status, info)  # fmt: skip


@router.get("/admin/users", name="admin_users")
async def list_accounts(request: Request, info: Admin, sessions: Sessions):
    return await users_page(request, info, sessions)


async def act(request: Request, info, sessions, action, done: str):
    try:
        await run_in_threadpool(action)
    except AccountError as err:
        return await users_page(request, info, sessions, 400, f"{err}.")
    return RedirectResponse(f"/admin/users?done={done}", status_code=303)


@router.post("/admin/users", name="admin_users_create")
async def create_account(request: Request, info: Admin, sessions: Sessions):
    form = await checked_form(request, info)
    name, role, password = form.get("username", "").strip(), form.get("role", ""), form.get("password", "")
    return await act(request, info, sessions, lambda: accounts.create_user(sessions, name, role, password), "created")


@router.post("/admin/users/{name}/state", name="admin_user_state")
async def set_state(request: Request, name: str, info: Admin, sessions: Sessions):
    form = await checked_form(request, info)
    disabled = form.get("disabled") == "true"
    return await act(request, info, sessions, lambda: accounts.set_disabled(sessions, name, disabled), "disabled" if disabled else "enabled")


@router.post("/admin/users/{name}/password", name="admin_user_password")
async def reset_password(request: Request, name: str, info: Admin, sessions: Sessions):
    form = await checked_form(request, info)
    password = form.get("password", "")
    return await act(request, info, sessions, lambda: accounts.set_password(sessions, name, password), "password")
