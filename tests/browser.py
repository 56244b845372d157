"""A real browser and a real dashboard for the dashboard's tests.

`browser`: Debian's Chromium, headless, driven by Selenium through Debian's chromedriver
(both paths given, so Selenium Manager never looks for or downloads anything), quit at the
end even when the test fails. `browser.screenshot(name)` keeps a picture of the current
page in the artifacts folder: $FAB_TEST_ARTIFACTS, or `browser-artifacts/` in the pytest
session's tmp root; the session's last lines name it (CI keeps nothing else: save that
folder). Without Chromium the tests skip, except under CI=true, where they fail:
scripts/bootstrap.sh installs it.

`running_dashboard(environ, log_path)`: `python -m fab.dashboard` as a user starts it, on
a free loopback port, stopped by its PID at the end.
"""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fab import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1280, 800)
PAGE_LOAD_SECONDS = 30
DASHBOARD_START_SECONDS = 30


def in_ci():
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def artifacts_folder(tmp_path_factory):
    """Where screenshots go: $FAB_TEST_ARTIFACTS, else one folder in the session's tmp root
    (under pytest-xdist each worker's root is a folder of the session's: all share one)."""
    chosen = os.environ.get("FAB_TEST_ARTIFACTS")
    if chosen:
        return Path(chosen)
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return root / "browser-artifacts"


def report_artifacts(terminalreporter, config):
    """The session's last words (tests/conftest.py's pytest_terminal_summary): where the
    screenshots are, if a test saved any."""
    folder = artifacts_folder(config._tmp_path_factory)  # the fixture's own, at the session's end
    if folder.is_dir() and any(folder.rglob("*.png")):
        terminalreporter.write_line(f"browser test artifacts (screenshots, logs): {folder}")


class Browser:
    """A WebDriver and the folder its screenshots go to."""

    def __init__(self, driver, artifacts):
        self.driver = driver
        self.artifacts = artifacts

    def screenshot(self, name):
        """Save the current page (the 1280x800 window) as `<name>.png` in the artifacts."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
        return path

    def keep_failure(self):
        """The page the test failed on: its picture and its HTML as the browser has it."""
        self.screenshot("at-failure")
        (self.artifacts / "at-failure.html").write_text(
            f"<!-- {self.driver.current_url} -->\n{self.driver.page_source}")


def chromium_missing():
    """Why the browser cannot start here, or None."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        return (f"{' and '.join(missing)} not found (`bash scripts/bootstrap.sh requirements-dev.txt` "
                "installs Debian's chromium and chromium-driver)")
    return None


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    folder = artifacts_folder(tmp_path_factory)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(artifacts, request, tmp_path_factory):
    """Headless Chromium at 1280x800; screenshots under artifacts/<test name>/."""
    missing = chromium_missing()
    if missing:
        if in_ci():
            pytest.fail(f"the browser tests need Chromium under CI: {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Root in a container: no sandbox, no GPU, /tmp instead of a small /dev/shm.
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", "--no-first-run", "--disable-extensions",
                 "--hide-scrollbars", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    folder = artifacts / request.node.name.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    service = Service(executable_path=CHROMEDRIVER, service_args=["--log-level=WARNING"],
                      log_output=str(folder / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    failed_before = request.session.testsfailed
    try:
        driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
        driver.set_script_timeout(PAGE_LOAD_SECONDS)
        fit_viewport(driver)
        found = Browser(driver, folder)
        yield found
        if request.session.testsfailed != failed_before:
            from selenium.common.exceptions import WebDriverException

            with contextlib.suppress(WebDriverException, OSError):  # a browser gone says nothing more
                found.keep_failure()
    finally:
        driver.quit()


def fit_viewport(driver):
    """Make the page's viewport (what a screenshot holds) WINDOW: headless Chromium takes
    its window's frame out of --window-size."""
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight];")
    outer = driver.get_window_size()
    driver.set_window_size(outer["width"] + WINDOW[0] - inner[0], outer["height"] + WINDOW[1] - inner[1])


# --- the dashboard, as a process ---------------------------------------------------------


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Dashboard:
    def __init__(self, process, url, log_path):
        self.process, self.url, self.log_path = process, url, log_path

    def output(self):
        return Path(self.log_path).read_text(errors="replace")

    def get(self, path, timeout=10):
        """(status, headers, body text) of GET `path`; an HTTP error is an answer too."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as answer:
                return answer.status, answer.headers, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode(errors="replace")


@contextlib.contextmanager
def running_dashboard(environ, log_path):
    """`python -m fab.dashboard --bind 127.0.0.1 --port <free>` with `environ` (its whole
    environment), until it answers; stopped by its PID at the end, whatever happens."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fab.dashboard", "--bind", "127.0.0.1", "--port", str(port)],
            cwd=PROJECT_ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    dashboard = Dashboard(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until_answering(dashboard)
        yield dashboard
    finally:
        stop(process)


def wait_until_answering(dashboard):
    deadline = time.monotonic() + DASHBOARD_START_SECONDS
    while True:
        if dashboard.process.poll() is not None:
            raise AssertionError(f"the dashboard exited {dashboard.process.returncode}:\n{dashboard.output()}")
        try:
            with urllib.request.urlopen(dashboard.url + "/api/environments", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (the test says whether with what it should)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not answer within {DASHBOARD_START_SECONDS}s:\n"
                                     f"{dashboard.output()}") from None
            time.sleep(0.1)


def stop(process):
    """End the dashboard (its own process group: uvicorn and anything it started)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
