"""Helpers of the browser tests: a browser page per person, logging in, screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "correct horse battery"


def new_page(browser: Any, server: Any) -> Any:
    """A fresh browser context (its own cookies) and page; confirmations are accepted and any
    other dialog (an `alert()` from injected script) is recorded on `page.dialogs`, and the
    console's errors on `page.console_errors`."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.dialogs = []

    def on_dialog(dialog: Any) -> None:
        page.dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    page.on("dialog", on_dialog)
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    return page


def create_first_admin(page: Any, server: Any) -> None:
    """The one-time setup link: the first admin, signed in on `page`."""
    page.goto(server.setup_url)
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.fill("input[name=password2]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/campaigns")


def login(page: Any, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/campaigns")


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
