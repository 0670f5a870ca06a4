"""Helpers for the browser tests: a loopback MLflow UI server and a headless system Chromium via Selenium.

Nothing is downloaded: the browser and its driver are the system's (Debian `chromium`, `chromium-driver`),
handed to Selenium by path so that Selenium Manager never runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")

BROWSER_NAMES = ("chromium", "chromium-browser")
WINDOW = (1920, 1200)
RENDER_TIMEOUT_S = 45.0
SERVER_START_TIMEOUT_S = 90.0


def browser_binary() -> str | None:
    return next((path for name in BROWSER_NAMES if (path := shutil.which(name))), None)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    missing = [
        what
        for what, found in (
            ("chromium (Debian package `chromium`)", browser_binary()),
            ("chromedriver (Debian package `chromium-driver`)", shutil.which("chromedriver")),
        )
        if not found
    ]
    return f"{' and '.join(missing)} not on PATH" if missing else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_ui(
    mlflow_bin: str, root: Path, env: dict[str, str], logs: Path, timeout_s: float = SERVER_START_TIMEOUT_S
) -> Iterator[str]:
    """`mlflow ui` on 127.0.0.1 over `<root>/mlflow.db`, one worker; yields its base URL once /health
    answers and always stops the whole process group (uvicorn and its workers) on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = f"sqlite:///{root}/mlflow.db"
    cmd = [mlflow_bin, "ui", "--backend-store-uri", db, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "mlflow-ui.stdout", logs / "mlflow-ui.stderr"
    env = {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        _wait_for_health(proc, f"{base}/health", timeout_s, err_path)
        yield base
    finally:
        _stop(proc)


def _wait_for_health(proc: subprocess.Popen[bytes], url: str, timeout_s: float, err_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    last: str = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"mlflow ui exited with {proc.returncode} before {url} answered; stderr:\n{_tail(err_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise AssertionError(
        f"mlflow ui did not answer {url} within {timeout_s:.0f} s (last: {last}); stderr:\n{_tail(err_path)}"
    )


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no stderr file)"


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM to the server's own process group (it was started in a new session), SIGKILL if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace_s)
    # workers that outlived the parent still sit in its group
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def chromium(window: tuple[int, int] = WINDOW) -> WebDriver:
    """A headless system Chromium driven by the system chromedriver (callers set SE_OFFLINE=true)."""
    options = webdriver.ChromeOptions()
    binary = browser_binary()
    if binary:
        options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={window[0]},{window[1]}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    service = Service(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    return driver


def body_text(driver: WebDriver, chars: int = 3000) -> str:
    try:
        return driver.find_element(By.TAG_NAME, "body").text[:chars]
    except Exception as exc:  # a failure message must not itself fail
        return f"(could not read the page text: {exc!r})"


def wait_until(
    driver: WebDriver,
    condition: Callable[[WebDriver], T | None | bool],
    what: str,
    screenshot: Path | None = None,
    timeout_s: float = RENDER_TIMEOUT_S,
) -> T:
    """Poll `condition` until it returns something truthy; on timeout fail with the page's visible text
    (and save a screenshot next to the test's other files)."""
    wait = WebDriverWait(
        driver,
        timeout_s,
        poll_frequency=0.25,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    try:
        return wait.until(condition)  # type: ignore[arg-type,return-value]
    except TimeoutException:
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
        shot = f" (screenshot: {screenshot})" if screenshot is not None else ""
        raise AssertionError(
            f"timed out after {timeout_s:.0f} s waiting for {what} at {driver.current_url}{shot}; "
            f"visible page text:\n{body_text(driver)}"
        ) from None


def scroll_into_view(driver: WebDriver, element: WebElement, block: str = "center") -> WebElement:
    """Scroll every scrollable ancestor (the page, an inner table body) until `element` is in view."""
    driver.execute_script(
        "arguments[0].scrollIntoView({block: arguments[1], inline: 'nearest'});", element, block
    )
    return element


def expand_section(driver: WebDriver, title: str, screenshot: Path | None = None) -> None:
    """Open a collapsible section ("Description", "Tags", ...) by clicking its header if it is closed."""
    header_xpath = (
        "//*[contains(concat(' ', normalize-space(@class), ' '), 'collapse-header')]"
        f"[.//text()[normalize-space(.)='{title}']]"
    )
    header = wait_until(
        driver,
        lambda d: next(iter(d.find_elements(By.XPATH, header_xpath)), None),
        f"the {title!r} section header",
        screenshot,
    )
    if header.get_attribute("aria-expanded") == "false":
        scroll_into_view(driver, header).click()
        wait_until(
            driver,
            lambda d: d.find_element(By.XPATH, header_xpath).get_attribute("aria-expanded") != "false",
            f"the {title!r} section to open",
            screenshot,
        )
