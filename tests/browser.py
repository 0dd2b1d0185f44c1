"""Headless Debian Chromium driven by Playwright for the browser tests (a browser is never downloaded)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    Page = expect = sync_playwright = None

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

if sync_playwright is None:
    _missing = "playwright is not installed (pip install -e '.[dev]')"
elif not Path(CHROMIUM).exists():
    _missing = "Debian chromium is not installed (apt-get install chromium)"
else:
    _missing = ""
needs_browser = pytest.mark.skipif(bool(_missing), reason=_missing or "browser available")

__all__ = ["CHROMIUM", "browser_page", "expect", "needs_browser"]


@contextmanager
def browser_page(requests: list[str], errors: list[str]) -> Iterator[Page]:
    """A 1400×1000 page; every requested URL goes to ``requests``, console errors and page errors to ``errors``."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page
        finally:
            browser.close()
