"""The admin's pages: each handler reads or writes through the store's typed services and the auth module's
functions, the same calls the ``janusmail`` CLI makes (``user add``/``passwd``, ``quota set``,
``app-password add``/``revoke``, ``token revoke``), so the web and the command line cannot do a thing two ways.

POST handlers answer with a 303 to the page they changed (``?msg=`` picks a fixed message, never text from the
URL), except the one that creates an app password: its secret is shown once, in that response, and nowhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING

from starlette.responses import PlainTextResponse, Response

from janusmail.admin import explain as explaining
from janusmail.auth import app_passwords
from janusmail.auth.passwords import make_credentials
from janusmail.cli.quota import human, parse_count, parse_size
from janusmail.connections import DOORS, ConnectionInfo, everyone, failed_logins_elsewhere
from janusmail.store.model import AlreadyExists, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.admin.app import AdminContext
    from janusmail.store.accounts import AccountSummary

MESSAGES = {
    "created": "Account created.",
    "disabled": "Account disabled: its sessions end and no login is accepted.",
    "enabled": "Account enabled.",
    "password": "Password changed: sessions logged in with the old one end.",
    "quota": "Limits saved.",
    "revoked": "App password revoked: its sessions end.",
    "token-revoked": "Token revoked: it is refused from now on and its sessions end.",
    "admin-on": "Administrator rights granted.",
    "admin-off": "Administrator rights withdrawn.",
    "jmap-on": "JMAP switched on for this account.",
    "jmap-off": "JMAP switched off for this account.",
}


# -- template filters ------------------------------------------------------------------------------------------

def human_size(octets: int | None) -> str:
    return "none" if octets is None else human(int(octets))


def when(epoch: float | None) -> str:
    return "never" if not epoch else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def ago(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h"


# -- reads -----------------------------------------------------------------------------------------------------

async def _summary(ctx: AdminContext, account_id: str) -> AccountSummary | None:
    found = await ctx.store.call(ctx.store.accounts.summaries, account_id)
    return found[0] if found else None


async def _live(ctx: AdminContext) -> list[ConnectionInfo]:
    """Every process's open connections: this one's live, the other workers' and nodes' as they published."""
    return await everyone(ctx.store, ctx.rt.connections)


def _connections_by_address(live: list[ConnectionInfo]) -> dict[str | None, dict[str, int]]:
    table: dict[str | None, dict[str, int]] = {}
    for (door, address), n in Counter((c.door, c.address) for c in live).items():
        table.setdefault(address, {})[door] = n
    return table


# -- accounts --------------------------------------------------------------------------------------------------

async def accounts(ctx: AdminContext, status: int = 200, error: str | None = None, address: str = "") -> Response:
    rows = await ctx.store.call(ctx.store.accounts.summaries)
    return ctx.render("accounts.html", status, accounts=rows, live=_connections_by_address(await _live(ctx)),
                      doors=DOORS,
                      error=error, new_address=address)


async def create_account(ctx: AdminContext) -> Response:
    address, password = ctx.form.get("address", "").strip(), ctx.form.get("password", "")
    if not address or not password:
        return await accounts(ctx, 400, "An address and a password are needed.", address)
    pw_hash, scram = await ctx.rt.auth.run(make_credentials, password)
    try:
        acct = await ctx.store.call(ctx.store.accounts.create, address, pw_hash, scram)
    except AlreadyExists:
        return await accounts(ctx, 409, f"An account {address} already exists.", address)
    except ValueError as exc:
        return await accounts(ctx, 400, str(exc), address)
    if ctx.form.get("admin") == "on":
        await ctx.store.call(ctx.store.accounts.set_admin, acct.id, True)
    return ctx.redirect(f"/accounts/{acct.id}", "created")


async def account(ctx: AdminContext, status: int = 200, error: str | None = None,
                  new_secret: tuple[str, str] | None = None) -> Response:
    account_id = ctx.request.path_params["account_id"]
    summary = await _summary(ctx, account_id)
    if summary is None:
        return ctx.render("error.html", 404, error="No such account")
    aps = await ctx.store.call(app_passwords.list_for, ctx.store, account_id, include_revoked=True)
    tokens = await ctx.store.call(ctx.store.tokens.list, account_id)
    live = [c for c in await _live(ctx) if c.account_id == account_id]
    return ctx.render("account.html", status, account=summary, app_passwords=aps, tokens=tokens, live=live,
                      error=error, new_secret=new_secret, protocols=app_passwords.PROTOCOLS, now=time.time())


async def account_action(ctx: AdminContext) -> Response:
    account_id, action = ctx.request.path_params["account_id"], ctx.request.path_params["action"]
    store = ctx.store
    if await _summary(ctx, account_id) is None:
        return ctx.render("error.html", 404, error="No such account")
    try:
        if action in ("disable", "enable"):
            if action == "disable" and account_id == ctx.admin.account_id:
                return await account(ctx, 400, "You cannot disable the account you are logged in with.")
            await store.call(store.accounts.set_disabled, account_id, action == "disable")
            return ctx.redirect(f"/accounts/{account_id}", action + "d")
        if action in ("admin-on", "admin-off"):
            if action == "admin-off" and account_id == ctx.admin.account_id:
                return await account(ctx, 400, "You cannot withdraw your own administrator rights.")
            await store.call(store.accounts.set_admin, account_id, action == "admin-on")
            return ctx.redirect(f"/accounts/{account_id}", action)
        if action in ("jmap-on", "jmap-off"):
            await store.call(store.accounts.set_jmap_enabled, account_id, action == "jmap-on")
            return ctx.redirect(f"/accounts/{account_id}", action)
        if action == "password":
            password = ctx.form.get("password", "")
            if not password:
                return await account(ctx, 400, "The new password must not be empty.")
            pw_hash, scram = await ctx.rt.auth.run(make_credentials, password)
            await store.call(store.credentials.set_password, account_id, pw_hash, scram)
            return ctx.redirect(f"/accounts/{account_id}", "password")
        if action == "quota":
            return await _quota(ctx, account_id)
        if action == "app-passwords":
            return await _create_app_password(ctx, account_id)
    except NotFound:
        return ctx.render("error.html", 404, error="No such account")
    return ctx.render("error.html", 404, error="No such action")


async def _quota(ctx: AdminContext, account_id: str) -> Response:
    """``quota set``: a field left empty keeps its limit, ``none`` removes it; the clear button removes both."""
    changes: dict[str, int | None] = {}
    if ctx.form.get("clear") == "1":
        changes = {"storage": None, "messages": None}
    else:
        try:
            if ctx.form.get("storage", "").strip():
                changes["storage"] = parse_size(ctx.form["storage"])
            if ctx.form.get("messages", "").strip():
                changes["messages"] = parse_count(ctx.form["messages"])
        except ValueError as exc:
            return await account(ctx, 400, str(exc))
    if changes:
        await ctx.store.call(ctx.store.quotas.set_limits, account_id, **changes)
    return ctx.redirect(f"/accounts/{account_id}", "quota")


async def _create_app_password(ctx: AdminContext, account_id: str) -> Response:
    protocols = [p for p in app_passwords.PROTOCOLS if ctx.form.get(f"proto_{p}") == "on"]
    try:
        ap, secret = await asyncio.to_thread(app_passwords.create, ctx.store, account_id,
                                             ctx.form.get("name", ""), protocols)
    except app_passwords.AppPasswordError as exc:
        return await account(ctx, 400, str(exc))
    return await account(ctx, 201, new_secret=(ap.name, secret))


async def revoke_app_password(ctx: AdminContext) -> Response:
    """The CLI's ``app-password revoke``: the store stamps the credential epoch and announces the change in
    the same transaction, which ends the IMAP sessions and JMAP push streams logged in with it."""
    account_id, ap_id = ctx.request.path_params["account_id"], ctx.request.path_params["ap_id"]
    if not await asyncio.to_thread(app_passwords.revoke, ctx.store, account_id, ap_id):
        return await account(ctx, 404, "No active app password with that id for this account.")
    return ctx.redirect(f"/accounts/{account_id}", "revoked")


async def revoke_token(ctx: AdminContext) -> Response:
    """The CLI's ``token revoke``: the store marks the token revoked and stamps the account's credential epoch in
    one transaction, so every door refuses it from now on and the sessions logged in with it end."""
    account_id, jti = ctx.request.path_params["account_id"], ctx.request.path_params["jti"]
    if await ctx.store.call(ctx.store.tokens.revoke, jti, account_id=account_id) is None:
        return await account(ctx, 404, "No active token with that id for this account.")
    return ctx.redirect(f"/accounts/{account_id}", "token-revoked")


# -- live state -------------------------------------------------------------------------------------------------

async def connections(ctx: AdminContext) -> Response:
    live = await _live(ctx)
    per_door = {door: sum(1 for c in live if c.door == door) for door in DOORS}
    return ctx.render("connections.html", live=live, per_door=per_door, doors=DOORS,
                      by_address=_connections_by_address(live), now=time.time(),
                      processes=sorted({c.where for c in live if c.where}))


async def security(ctx: AdminContext) -> Response:
    auth = ctx.rt.auth
    return ctx.render("security.html", view=auth.throttle.snapshot(), gate=auth.gate, policy=auth.policy,
                      elsewhere=await failed_logins_elsewhere(ctx.store), now=time.time())


async def storage(ctx: AdminContext) -> Response:
    rows = await ctx.store.call(ctx.store.accounts.summaries)
    rows.sort(key=lambda r: r.storage_used, reverse=True)
    totals = (sum(r.storage_used for r in rows), sum(r.messages_used for r in rows))
    return ctx.render("storage.html", accounts=rows, totals=totals)


# -- JMAPACCESS explain ------------------------------------------------------------------------------------------

async def jmapaccess(ctx: AdminContext) -> Response:
    q = ctx.request.query_params
    rows = await ctx.store.call(ctx.store.accounts.summaries)
    chosen = q.get("account", "")
    kind = q.get("kind", "password")
    protocols = frozenset(p for p in app_passwords.PROTOCOLS if q.get(f"proto_{p}") == "on")
    scopes = frozenset(p for p in app_passwords.PROTOCOLS if q.get(f"scope_{p}") == "on")
    ap_id = q.get("app_password", "") or None
    result = None
    aps: list[app_passwords.AppPassword] = []
    if chosen:
        aps = await ctx.store.call(app_passwords.list_for, ctx.store, chosen)
    if chosen and kind in explaining.KINDS:
        result = await asyncio.to_thread(explaining.explain, ctx.rt, chosen, kind, protocols=protocols,
                                         scopes=scopes, app_password_id=ap_id if kind == "app_password" else None)
    return ctx.render("jmapaccess.html", accounts=rows, chosen=chosen, kind=kind, kinds=explaining.KINDS,
                      protocols=protocols, scopes=scopes, all_protocols=app_passwords.PROTOCOLS,
                      app_passwords=aps, ap_id=ap_id, result=result)


# -- session -----------------------------------------------------------------------------------------------------

async def csrf(ctx: AdminContext) -> Response:
    """A CSRF token for a script using Basic (send it as ``csrf_token`` or ``X-CSRF-Token``)."""
    return PlainTextResponse(ctx.app.guard.csrf_token(ctx.admin.binding) + "\n",
                             headers={"Cache-Control": "no-store"})


async def logout(ctx: AdminContext) -> Response:
    ctx.request.session.clear()
    return ctx.redirect("/login")
