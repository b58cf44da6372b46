"""The web admin in a real headless browser: Debian's ``chromium`` driven by playwright (the system browser, never
a downloaded one). Log in through the form, create an account, revoke an app password and see the IMAP session
logged in with it closed, and keep a screenshot (``test-artifacts/``, ignored by git; its path is printed).

Without chromium or playwright the test is skipped, except under CI (``CI=true``), where it fails: CI installs
chromium from ``.ci/extra-packages``, so its absence there is a broken set-up, not a reason to pass.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from janusmail.auth import app_passwords, passwords
from tests.imap.e2e_util import PASSWORD, serve_shared
from tests.serverutil import ServerThread

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _browser_or_skip() -> object:
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed"
        sync_playwright = None
    if missing is None and not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        missing = f"chromium is not installed ({CHROMIUM})"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing}; CI must have it (.ci/extra-packages, the test extras)")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


def test_admin_in_a_real_browser(srv: ServerThread) -> None:
    sync_playwright = _browser_or_skip()
    admin = f"root{uuid.uuid4().hex[:6]}@example.test"
    srv.store.accounts.set_admin(srv.store.accounts.create(admin, *passwords.make_credentials(PASSWORD)).id, True)
    user = f"carol{uuid.uuid4().hex[:6]}@example.test"
    uid = srv.store.accounts.create(user, *passwords.make_credentials(PASSWORD)).id
    ap, secret = app_passwords.create(srv.store, uid, "old phone", "imap")
    newcomer = f"dave{uuid.uuid4().hex[:6]}@example.test"
    base = f"http://127.0.0.1:{srv.jmap_port}/admin"

    imap = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30)
    imap.login(user, secret)
    assert imap.noop()[0] == "OK"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "admin-browser.png"
    try:
        with sync_playwright() as pw:  # type: ignore[operator]
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                page = browser.new_page(java_script_enabled=False)  # the essentials work without JavaScript
                page.set_default_timeout(60_000)
                page.goto(base + "/")
                assert page.locator("h1").inner_text() == "Log in"
                page.fill("input[name=address]", admin)
                page.fill("input[name=password]", PASSWORD)
                page.click("button:has-text('Log in')")
                page.wait_for_selector("h1:has-text('Accounts')")
                assert admin in page.content()

                page.fill("form[action$='/accounts'] input[name=address]", newcomer)
                page.fill("form[action$='/accounts'] input[name=password]", "a new password")
                page.click("form[action$='/accounts'] button[type=submit]")
                page.wait_for_selector("text=Account created.")
                assert page.locator("h1").inner_text() == newcomer
                assert srv.store.accounts.by_address(newcomer) is not None

                page.goto(f"{base}/accounts/{uid}")
                page.wait_for_selector(f"text={ap.id}")
                assert "imap" in page.locator("table#live").inner_text()  # its live session is listed
                page.click("button[aria-label='Revoke old phone']")
                page.wait_for_selector("text=App password revoked")
                # the session logged in with the revoked app password is told BYE at its next command
                with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
                    imap.noop()
                    imap.noop()
                # ... and leaves the account's live connections (reloaded: the page runs no script)
                deadline = time.monotonic() + 60
                while "No live connection." not in page.content():
                    assert time.monotonic() < deadline, "the revoked session is still listed"
                    page.reload()
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    finally:
        try:
            imap.shutdown()
        except OSError:
            pass
    assert not app_passwords.get(srv.store, ap.id).active
    assert shot.stat().st_size > 0
    print(f"admin screenshot: {shot}")
