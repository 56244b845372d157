"""The dashboard in a real browser (Debian's Chromium, headless), started as a real process.

On the history store a real deploy on the test fleet is writing to: the operation's page
follows the log live and ends with the outcome, the timeline has a row per host and the
steps' bars, the environments page shows the new release, hostile text from the store is
shown as text and runs nothing, and no secret reaches any page or API answer. On a store
made with hostile text in every field (tests/dashboard_store.py, no fleet): every page runs
nothing. Each page's screenshot is kept (tests/browser.py says where)."""
import json
import os
import secrets as random_secrets
import urllib.parse

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import dashboard_store
from browser import running_dashboard
from conftest import CONTROLLER_CACHE
from fab.events import SUCCEEDED
from shared_fixtures import GoSignal
from test_history import remaining_lines, start_fab

# Shown by the store as they were written; each must reach the page as text, never as markup.
HOSTILE_SUBJECT = '<script>window.__pwned=1</script> "onload=alert(1)'
HOSTILE_MESSAGE = '<script>window.__pwned=2</script> "onload=alert(2)'
HOSTILE_LINE = '<img src=x onerror="window.__pwned=3">'  # a log line, added by the page's script
SECRET = "dashboard-secret-" + random_secrets.token_hex(8)
WAIT_SECONDS = 120


def wait_until(driver, condition, what, seconds=WAIT_SECONDS):
    return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda _: condition(), message=what)


def open_page(browser, dashboard, path):
    browser.driver.get(dashboard.url + path)
    return browser.driver


def log_lines(driver):
    """[(n, text)] of the log as the page shows it now (each line's text as written)."""
    return [(int(n), text.removesuffix("\n")) for n, text in driver.execute_script(
        "return Array.from(document.querySelectorAll('pre#log span.line'), s => [s.dataset.n, s.textContent]);")]


def outcome(driver):
    return driver.find_element(By.CSS_SELECTOR, "p#status").get_attribute("data-outcome")


def host_steps(driver, selector):
    """Sorted (data-host, data-step) of the elements `selector` finds."""
    return sorted(tuple(pair) for pair in driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => [e.dataset.host, e.dataset.step]);",
        selector))


def shown_as_text(driver, text):
    """The innermost elements whose whole text is `text` (as the browser renders it)."""
    found = driver.execute_script(
        "return Array.from(document.body.querySelectorAll('*')).filter(e =>"
        " e.textContent.trim() === arguments[0] &&"
        " !Array.from(e.children).some(c => c.textContent.trim() === arguments[0]));", text)
    return [element for element in found if element.text == text]


def assert_nothing_ran(driver):
    assert driver.execute_script("return typeof window.__pwned") == "undefined"
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    raise AssertionError(f"an alert is open: {alert.text!r}")


def dashboard_environ(env):
    """The dashboard's environment, as a user on the controller has it: the environments
    folder and the store its deploys write to, no token (bound to loopback)."""
    environ = {**os.environ, **CONTROLLER_CACHE, "DEPLOY_ENVIRONMENTS": env.directory,
               "FAB_HISTORY_URL": os.environ["FAB_HISTORY_URL"]}
    environ.pop("FAB_DASHBOARD_TOKEN", None)
    return environ


def every_answer(dashboard, environment):
    """{path: body} of every page and API answer about `environment` and its operations."""
    quoted = urllib.parse.quote(environment)
    paths = ["/", "/api/environments", "/history", "/api/history", f"/history?environment={quoted}",
             f"/api/history?environment={quoted}", f"/delivery?environment={quoted}",
             f"/api/delivery?environment={quoted}"]
    status, _, body = dashboard.get(f"/api/history?environment={quoted}")
    assert status == 200, body
    for operation in json.loads(body)["operations"]:
        base = f"/operations/{quoted}/{operation['id']}"
        paths += [base, f"/api{base}", f"{base}/timeline.svg", f"{base}/log", f"/api{base}/log?after=0"]
    answers = {}
    for path in paths:
        status, headers, body = dashboard.get(path)
        assert status == 200, f"{path}: {status} {body[:500]}"
        assert "script-src 'self'" in headers["content-security-policy"], path
        answers[path] = body
    return answers


@pytest.mark.fleet
def test_the_dashboard_follows_a_real_deploy_and_shows_it_safely(deploy_env, go_signal, browser, tmp_path):
    env = deploy_env
    secrets_file = tmp_path / "app-secrets.env"
    secrets_file.write_text(f"API_TOKEN={SECRET}\n")
    # Held before the swap until the browser watches; then more lines (a hook naming the
    # secret, masked in the store, and a hostile line) and held again until the page showed
    # them: the log grew while the deploy ran, however slow the machine.
    then = GoSignal()
    env.write_config(
        secrets={"file": str(secrets_file)},
        checks=['echo "check saw $API_TOKEN"'],
        hooks={"before_swap": [go_signal.check(), f"echo hook saw {SECRET}; echo '{HOSTILE_LINE}'", then.check()]})
    commit = env.commit("hostile.txt", "1\n", HOSTILE_SUBJECT)
    driver = browser.driver

    deploy = start_fab(env, "deploy", environ={**CONTROLLER_CACHE, "FAB_DEPLOY_MESSAGE": HOSTILE_MESSAGE})
    try:
        store = os.environ["FAB_HISTORY_URL"].removeprefix("sqlite:///")
        wait_until(driver, lambda: os.path.exists(store) or deploy.poll() is not None, "no store written")
        with running_dashboard(dashboard_environ(env), browser.artifacts / "dashboard.log") as dashboard:
            wait_until(driver, lambda: go_signal.waiting() or deploy.poll() is not None, "the deploy never held")
            assert deploy.poll() is None, remaining_lines(deploy)

            open_page(browser, dashboard, "/")
            row = driver.find_element(By.CSS_SELECTOR, f'table#environments tr[data-environment="{env.name}"]')
            assert row.find_elements(By.CSS_SELECTOR, "span.live"), row.text

            open_page(browser, dashboard, f"/history?environment={env.name}")
            [row] = driver.find_elements(By.CSS_SELECTOR, "table#history tr[data-operation]")
            operation_id = row.get_attribute("data-operation")
            assert "running" in row.find_element(By.CSS_SELECTOR, "td.outcome").text

            open_page(browser, dashboard, f"/operations/{env.name}/{operation_id}")
            assert outcome(driver) == "running"
            wait_until(driver, lambda: log_lines(driver), "no log line while the deploy runs")
            held = len(log_lines(driver))
            browser.screenshot("operation-running")
            go_signal.go()
            wait_until(driver, lambda: any(text.endswith(f"  {HOSTILE_LINE}") for _, text in log_lines(driver)),
                       "the log did not grow")
            assert len(log_lines(driver)) > held and outcome(driver) == "running"
            assert deploy.poll() is None  # it grew live: the deploy waits for `then`
            then.go()
            wait_until(driver, lambda: outcome(driver) != "running", "the page never showed the end")
            assert outcome(driver) == SUCCEEDED, driver.find_element(By.CSS_SELECTOR, "p#status").text
            output = remaining_lines(deploy)
            assert any("deploy finished" in line for line in output), output

            # The whole log, once, in order, as the store has it; the hostile line as text.
            shown = log_lines(driver)
            status, _, body = dashboard.get(f"/api/operations/{env.name}/{operation_id}/log?after=0")
            assert status == 200, body
            assert shown == [(line["n"], line["text"]) for line in json.loads(body)["lines"]]
            assert any(text.endswith(f"  {HOSTILE_LINE}") for _, text in shown), shown  # the hook's output
            assert not driver.find_elements(By.CSS_SELECTOR, "pre#log *:not(span.line)")

            assert shown_as_text(driver, HOSTILE_SUBJECT) and shown_as_text(driver, HOSTILE_MESSAGE)
            assert_nothing_ran(driver)

            # The page as the server renders the finished operation: its timeline has a row
            # per host and a bar for each of the steps the page lists (code and check on each).
            driver.refresh()
            assert outcome(driver) == SUCCEEDED and log_lines(driver) == shown
            picture = driver.find_element(By.CSS_SELECTOR, "div#timeline svg.timeline")
            assert picture.get_attribute("data-hosts") == str(len(env.hosts))
            bars = host_steps(driver, "div#timeline rect.bar")
            assert bars == host_steps(driver, "section#steps tr[data-step]")
            assert {(host, step) for host in env.hosts for step in ("code", "check")} <= set(bars)
            assert shown_as_text(driver, HOSTILE_SUBJECT) and shown_as_text(driver, HOSTILE_MESSAGE)
            assert_nothing_ran(driver)
            browser.screenshot("operation")

            release = env.current("web1")
            open_page(browser, dashboard, "/")
            row = driver.find_element(By.CSS_SELECTOR, f'table#environments tr[data-environment="{env.name}"]')
            assert row.find_element(By.CSS_SELECTOR, "td.release").text == release
            assert commit[:12] in row.find_element(By.CSS_SELECTOR, "td.commit").text
            assert not row.find_elements(By.CSS_SELECTOR, "span.live")
            assert shown_as_text(driver, HOSTILE_SUBJECT)
            assert_nothing_ran(driver)
            browser.screenshot("environments")

            open_page(browser, dashboard, f"/history?environment={env.name}")
            row = driver.find_element(By.CSS_SELECTOR, f'table#history tr[data-operation="{operation_id}"]')
            assert row.find_element(By.CSS_SELECTOR, "td.message").text == HOSTILE_MESSAGE
            assert row.find_element(By.CSS_SELECTOR, "td.outcome").text == SUCCEEDED
            assert row.find_element(By.CSS_SELECTOR, "td.release").text == release
            assert shown_as_text(driver, HOSTILE_SUBJECT)
            assert_nothing_ran(driver)
            browser.screenshot("history")

            open_page(browser, dashboard, f"/delivery?environment={env.name}&days=30")
            figures = driver.find_element(By.CSS_SELECTOR, "section#figures")
            for name in ("deploys-per-day", "change-failure-rate", "time-to-restore", "lead-time"):
                assert figures.find_element(By.CSS_SELECTOR, f"dd#{name}").text.strip(), name
            assert figures.find_element(By.CSS_SELECTOR, "dd#deploys").text == "1"
            assert figures.find_element(By.CSS_SELECTOR, "dd#change-failure-rate").text.startswith("0%")
            assert figures.find_elements(By.CSS_SELECTOR, "svg rect"), "no chart"
            browser.screenshot("delivery")

            # No secret anywhere: every page and API answer, and what the browser built.
            answers = every_answer(dashboard, env.name)
            leaked = [path for path, body in answers.items() if SECRET in body]
            assert leaked == [], leaked
            assert SECRET not in driver.page_source
            log = answers[f"/api/operations/{env.name}/{operation_id}/log?after=0"]
            assert "hook saw ***" in log  # the secret reached the store, masked
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait()
        then.close()


def test_hostile_text_in_every_field_of_a_store_runs_nothing_on_any_page(store, browser):
    given, ids = store
    environ = {**os.environ, **given}
    environ.pop("DEPLOY_ENVIRONMENTS", None)
    environ.pop("FAB_DASHBOARD_TOKEN", None)
    with running_dashboard(environ, browser.artifacts / "dashboard.log") as dashboard:
        driver = browser.driver
        for number, (page, _api) in enumerate(dashboard_store.every_address(ids)):
            open_page(browser, dashboard, page)
            assert_nothing_ran(driver)
            assert dashboard_store.SECRET not in driver.page_source, page
            if "/operations/" in page:
                assert shown_as_text(driver, f"Fix {dashboard_store.HOSTILE}"), page  # the commit's subject
            browser.screenshot(f"{number}-{page.split('?')[0].split('/')[1] or 'environments'}")
        open_page(browser, dashboard, "/")
        assert shown_as_text(driver, dashboard_store.HOSTILE_ENVIRONMENT)  # a name only a store holds
