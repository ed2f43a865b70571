"""Headless Debian Chromium for the browser tests (Playwright's own browser build is never downloaded)."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    """CHROMIUM_PATH when set, otherwise Debian's Chromium."""
    wanted = os.environ.get("CHROMIUM_PATH")
    candidates = [wanted] if wanted else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in candidates if c and os.path.exists(c)), None)


def require_chromium() -> str:
    """The browser's path; skip (or fail under REQUIRE_SERVICES=1) when it is not installed."""
    path = chromium_path()
    if path is None:
        message = "Chromium not installed (apt-get install -y chromium, or set CHROMIUM_PATH)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}, but REQUIRE_SERVICES=1")
        pytest.skip(message)
    return path
