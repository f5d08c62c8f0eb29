"""Headless Chromium for web UI tests: Debian's ``chromium`` + ``chromium-driver`` through Selenium.

``scripts/bootstrap --test`` installs both packages. Tests call :func:`require_chromium` (skips
with the reason when the browser, the driver or selenium is missing) and use :func:`chromium`
as a context manager; the browser and its chromedriver are stopped by PID on exit.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from typing import Iterator

import pytest

CHROMIUM = os.environ.get("LETRADE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LETRADE_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium_missing() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: install the Debian package {package} (scripts/bootstrap --test does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it is in the test extra: pip install -e '.[test]')"
    return None


def require_chromium() -> None:
    """Skip the calling test, with the reason, when headless Chromium cannot be started."""
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)


def start_chromium(user_data_dir: str, *, width: int = 1400, height: int = 1000):
    """A Selenium driver for a new headless Chromium with its profile in ``user_data_dir``.

    Offline by construction: the browser and driver paths are given, so Selenium Manager has
    nothing to download, and Chromium's background networking is off.
    """
    os.environ.setdefault("SE_AVOID_STATS", "true")   # Selenium Manager telemetry, if it ever runs
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def stop_chromium(driver) -> None:
    """Quit the browser, then make sure chromedriver (which owns the browser) is gone, by PID."""
    proc = getattr(getattr(driver, "service", None), "process", None)
    try:
        driver.quit()
    except Exception:
        pass
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(5)


@contextlib.contextmanager
def chromium(user_data_dir: str | None = None, **kw) -> Iterator:
    """``with chromium() as driver:`` — a headless browser stopped on exit."""
    owned = user_data_dir is None
    user_data_dir = user_data_dir or tempfile.mkdtemp(prefix="letrade-chromium-")
    driver = start_chromium(user_data_dir, **kw)
    try:
        yield driver
    finally:
        stop_chromium(driver)
        if owned:
            shutil.rmtree(user_data_dir, ignore_errors=True)
