"""The dashboard in headless Chromium against a real `serve` process on PostgreSQL:
what a person sees and does, from the list to the detail page and its actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from sqlalchemy.engine import Engine as SAEngine

from ledgerflow import outbox
from ledgerflow.outbox import OutboundMessage, Outcome, Relay
from tests.cli.test_serve import Served
from tests.ui.conftest import shot, submit_confirmed, text_of, until, wait_status

pytestmark = pytest.mark.slow

ACME = {"Authorization": "Bearer acme-token"}
GLOBEX = {"Authorization": "Bearer globex-token"}
ROOT_TOKEN = {"Authorization": "Bearer root-token"}


def trigger(served: Served, workflow: str, input: Any = None,
            headers: dict[str, str] | None = None, **extra: Any) -> str:
    created = served.http.post("/api/runs", json={"workflowId": workflow, "input": input,
                                                  **extra}, headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def open_run(browser: WebDriver, served: Served, run_id: str) -> None:
    browser.get(f"{served.base_url}/ui/runs/{run_id}")
    until(browser, lambda d: run_id in d.title, f"the page of run {run_id} did not open")


def status_shown(browser: WebDriver) -> str:
    return text_of(browser, ".summary .run-status")


def test_the_list_shows_a_new_run_without_a_reload(serve: Served, browser: WebDriver) -> None:
    first = trigger(serve, "greet", "first")
    browser.get(f"{serve.base_url}/ui")
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-run="{first}"]'),
          "the first run is not listed")
    browser.execute_script("window.__notReloaded = true")
    assert "Open dashboard" in text_of(browser, ".banner")

    second = trigger(serve, "booking", None, tags=["vip"])
    row = until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-run="{second}"]'),
                "a run triggered after the page loaded did not appear")
    assert browser.execute_script("return window.__notReloaded") is True
    assert "booking" in row.text and "vip" in row.text
    until(browser, lambda d: "suspended" in d.find_element(
        By.CSS_SELECTOR, f'tr[data-run="{second}"]').text, "the run's status did not update")
    counts = text_of(browser, ".counts")
    assert "all 2" in counts and "suspended 1" in counts and "completed 1" in counts
    shot(browser, "runs-list")


def test_the_detail_page_shows_the_timeline_and_the_journal(serve: Served,
                                                            browser: WebDriver) -> None:
    run_id = trigger(serve, "fragile", {"ok": True})
    wait_status(serve, run_id, "completed")
    open_run(browser, serve, run_id)
    assert "completed" in status_shown(browser)
    events = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".timeline .etype")]
    assert events[0] == "RunCreated" and events[-1] == "RunCompleted"
    assert events.count("StepCompleted") == 2
    steps = browser.find_elements(By.CSS_SELECTOR, ".journal tbody th[scope=row]")
    assert [s.text for s in steps] == ["first", "second"]
    bars = browser.find_elements(By.CSS_SELECTOR, ".journal .bar.o-ok")
    assert len(bars) == 2 and all(b.size["width"] >= 2 for b in bars)
    assert '"second": "paid"' in text_of(browser, "#h-result + pre")
    summary = browser.find_element(By.CSS_SELECTOR, ".timeline summary")
    summary.click()
    assert "workflow_id" in text_of(browser, ".timeline li:first-child pre")
    shot(browser, "run-detail")


def test_signal_a_waiting_run_from_the_page(serve: Served, browser: WebDriver) -> None:
    run_id = trigger(serve, "booking")
    wait_status(serve, run_id, "suspended")
    open_run(browser, serve, run_id)
    assert "signal confirm" in text_of(browser, ".waitpoint")
    form = browser.find_element(By.CSS_SELECTOR, 'form[action$="/signal"]')
    assert form.find_element(By.NAME, "name").get_attribute("value") == "confirm"
    form.find_element(By.NAME, "payload").send_keys('{"by": "ops"}')
    question = submit_confirmed(browser, form.find_element(By.TAG_NAME, "button"))
    assert "signal" in question.lower()
    until(browser, lambda d: "signal 'confirm' sent" in text_of(d, ".notice"), "no notice")
    until(browser, lambda d: "completed" in status_shown(d),
          "the run did not show as completed after the signal")
    assert wait_status(serve, run_id, "completed")["result"] == {"seat": "12A"}


def test_a_refused_action_shows_the_api_error(serve: Served, browser: WebDriver) -> None:
    run_id = trigger(serve, "booking")
    wait_status(serve, run_id, "suspended")
    open_run(browser, serve, run_id)
    form = browser.find_element(By.CSS_SELECTOR, 'form[action$="/token"]')
    form.find_element(By.NAME, "token_id").send_keys("no-such-token")
    submit_confirmed(browser, form.find_element(By.TAG_NAME, "button"))
    problem = until(browser, lambda d: text_of(d, ".problem[role=alert]"), "no error shown")
    assert "not_awaited" in problem and "no-such-token" in problem
    assert len(serve.http.get(f"/api/runs/{run_id}/history").json()["data"]) == \
        len(browser.find_elements(By.CSS_SELECTOR, ".timeline > li"))


def test_cancel_with_compensation(serve: Served, browser: WebDriver) -> None:
    run_id = trigger(serve, "booking")
    wait_status(serve, run_id, "suspended")
    open_run(browser, serve, run_id)
    form = browser.find_element(By.CSS_SELECTOR, 'form[action$="/cancel"]')
    form.find_element(By.NAME, "reason").send_keys("customer left")
    form.find_element(By.NAME, "compensate").click()
    question = submit_confirmed(browser, form.find_element(By.TAG_NAME, "button"))
    assert "Cancel run" in question
    until(browser, lambda d: "canceled" in status_shown(d), "the run did not show canceled")
    until(browser, lambda d: "CompensationCompleted" in text_of(d, ".timeline"),
          "the compensation is not in the timeline")
    bars = browser.find_elements(By.CSS_SELECTOR, ".journal .bar.o-undone")
    assert len(bars) == 1
    history = serve.http.get(f"/api/runs/{run_id}/history").json()["data"]
    undone = [e for e in history if e["type"] == "CompensationCompleted"]
    assert undone[0]["data"]["result"] == {"released": "12A"}


def test_resume_a_failed_run_from_a_chosen_step(serve: Served, browser: WebDriver) -> None:
    run_id = trigger(serve, "fragile", {"ok": False})
    failed = wait_status(serve, run_id, "failed")
    open_run(browser, serve, run_id)
    assert "Declined" in text_of(browser, "#h-result ~ .problem")
    assert "Traceback" in text_of(browser, ".trace")
    form = browser.find_element(By.CSS_SELECTOR, 'form[action$="/resume"]')
    Select(form.find_element(By.NAME, "step")).select_by_value("second")
    form.find_element(By.NAME, "input").send_keys('{"ok": true}')
    submit_confirmed(browser, form.find_element(By.TAG_NAME, "button"))
    until(browser, lambda d: "resumes" in text_of(d, ".notice"), "no notice of the new run")
    new_id = browser.current_url.split("/ui/runs/")[1].split("?")[0]
    assert new_id != run_id
    until(browser, lambda d: "completed" in status_shown(d), "the resumed run did not complete")
    assert f"Resumes: {run_id}" in text_of(browser, ".lineage")
    resumed = serve.http.get(f"/api/runs/{new_id}").json()
    assert resumed["resumedFrom"] == run_id and resumed["result"]["second"] == "paid"
    first = failed["id"]
    open_run(browser, serve, first)
    until(browser, lambda d: f"Resumed by: {new_id}" in text_of(d, ".lineage"),
          "the failed run does not link to the run that resumed it")


class Refusing:
    """A publisher the broker refuses (an injected fault): rows go dead."""

    def publish(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        from kafka.errors import TopicAuthorizationFailedError
        return [TopicAuthorizationFailedError("broker refused") for _ in messages]

    def close(self) -> None:
        pass


def sign_in(browser: WebDriver, served: Served, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{served.base_url}/ui")
    until(browser, lambda d: "/ui/login" in d.current_url, "no redirect to the sign-in page")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # the sign-in page's own URL ends with "?next=/ui": wait for the runs page's path
    until(browser, lambda d: urlsplit(d.current_url).path == "/ui",
          "sign-in did not go to the runs")


def test_a_tenant_token_cannot_open_another_tenants_run(serve_authed: Served,
                                                        browser: WebDriver) -> None:
    ours = trigger(serve_authed, "greet", "a", headers=ACME)
    theirs = trigger(serve_authed, "greet", "g", headers=GLOBEX)
    sign_in(browser, serve_authed, "acme-token")
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-run="{ours}"]'),
          "acme's run is not listed")
    assert not browser.find_elements(By.CSS_SELECTOR, f'tr[data-run="{theirs}"]')
    assert "tenant acme" in text_of(browser, ".who")
    browser.get(f"{serve_authed.base_url}/ui/runs/{theirs}")
    assert "Run not found" in text_of(browser, "h1")
    assert theirs in text_of(browser, ".problem")
    assert not browser.find_elements(By.CSS_SELECTOR, ".timeline")
    open_run(browser, serve_authed, ours)
    browser.get(f"{serve_authed.base_url}/ui/dead-letters")
    assert "Forbidden" in text_of(browser, "h1")


def test_replay_a_dead_letter(serve_authed: Served, browser: WebDriver,
                              pg_engine: SAEngine) -> None:
    run_id = trigger(serve_authed, "greet", "dlq", headers=ROOT_TOKEN)
    Relay(pg_engine, Refusing(), max_attempts=1).run_once()
    dead = outbox.dead_letters(pg_engine)
    assert dead and all(d.key == run_id for d in dead)
    sign_in(browser, serve_authed, "root-token")
    browser.get(f"{serve_authed.base_url}/ui/dead-letters")
    table = text_of(browser, "table.dlq")
    assert "RunCreated" in table and "broker refused" in table
    browser.find_element(By.ID, f"dl-{dead[0].id}").click()
    replay = browser.find_element(By.CSS_SELECTOR, 'button[formaction$="/replay"]')
    assert "Replay" in submit_confirmed(browser, replay)
    until(browser, lambda d: "replayed 1 dead letter" in text_of(d, ".notice"), "no notice")
    assert [d.id for d in outbox.dead_letters(pg_engine)] == [d.id for d in dead[1:]]
    with pg_engine.connect() as conn:
        state = outbox.delivery(conn, "ledgerflow.run-events", [dead[0].event_id])
    assert state == {dead[0].event_id: "pending"}


def test_narrow_screens_and_the_keyboard(serve: Served, browser: WebDriver) -> None:
    run_id = trigger(serve, "fragile", {"ok": False}, tags=["a-rather-long-tag-name"])
    wait_status(serve, run_id, "failed")
    browser.set_window_size(390, 844)
    try:
        for path, name in (("/ui", "runs-list-390"), (f"/ui/runs/{run_id}", "run-detail-390")):
            browser.get(f"{serve.base_url}{path}")
            until(browser, lambda d: d.find_element(By.TAG_NAME, "h1"), "no page")
            sideways = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert sideways <= 0, f"{path} scrolls sideways by {sideways}px at 390px"
            shot(browser, name)
        browser.get(f"{serve.base_url}/ui")
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert browser.switch_to.active_element.text == "Skip to content"
        browser.switch_to.active_element.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.text == "ledgerflow"
    finally:
        browser.set_window_size(1280, 900)


def queue_card(browser: WebDriver, name: str) -> Any:
    return browser.find_element(By.CSS_SELECTOR, f'section[data-queue="{name}"]')


def test_edit_a_queues_limit_and_see_a_bad_one_refused(serve_authed: Served,
                                                        browser: WebDriver) -> None:
    put = serve_authed.http.put("/api/queues/payments", json={"concurrency": 3},
                                headers=ROOT_TOKEN)
    assert put.status_code == 200, put.text
    sign_in(browser, serve_authed, "root-token")
    browser.find_element(By.LINK_TEXT, "Queues").click()
    until(browser, lambda d: d.title.startswith("Queues"), "the nav did not open the queues")
    card = queue_card(browser, "payments")
    assert card.find_element(By.CSS_SELECTOR, ".q-concurrency").text == "3"
    card.find_element(By.CSS_SELECTOR, "details.edit summary").click()
    field = card.find_element(By.NAME, "concurrency")
    field.clear()
    field.send_keys("8")
    question = submit_confirmed(browser, card.find_element(By.CSS_SELECTOR,
                                                           "form.limits button"))
    assert "payments" in question
    until(browser, lambda d: "queue 'payments' saved" in text_of(d, ".notice"), "no notice")
    assert queue_card(browser, "payments").find_element(
        By.CSS_SELECTOR, ".q-concurrency").text == "8"
    queues = serve_authed.http.get("/api/queues", headers=ROOT_TOKEN).json()["data"]
    assert [q["concurrency"] for q in queues if q["name"] == "payments"] == [8]

    card = queue_card(browser, "payments")
    card.find_element(By.CSS_SELECTOR, "details.edit summary").click()
    field = card.find_element(By.NAME, "concurrency")
    field.clear()
    field.send_keys("-2")
    submit_confirmed(browser, card.find_element(By.CSS_SELECTOR, "form.limits button"))
    problem = until(browser, lambda d: text_of(d, ".problem[role=alert]"), "no error shown")
    assert "invalid_request" in problem and "greater than 0" in problem
    assert "payments" in problem
    assert queue_card(browser, "payments").find_element(
        By.CSS_SELECTOR, ".q-concurrency").text == "8"
    shot(browser, "queues")


def test_pause_and_resume_a_schedule(serve_authed: Served, browser: WebDriver) -> None:
    made = serve_authed.http.post("/api/schedules", headers=ROOT_TOKEN, json={
        "scheduleId": "nightly", "workflowId": "greet", "cron": "0 3 * * *"})
    assert made.status_code == 201, made.text
    sign_in(browser, serve_authed, "root-token")
    browser.get(f"{serve_authed.base_url}/ui/schedules")

    def card() -> Any:
        return browser.find_element(By.CSS_SELECTOR, 'section[data-schedule="nightly"]')

    assert "active" in card().find_element(By.CSS_SELECTOR, ".schedule-state").text
    assert card().find_elements(By.CSS_SELECTOR, ".next-fires time")
    pause = card().find_element(By.CSS_SELECTOR, 'form[action$="/pause"] button')
    assert "Pause schedule nightly?" in submit_confirmed(browser, pause)
    until(browser, lambda d: "paused" in card().find_element(
        By.CSS_SELECTOR, ".schedule-state").text, "the schedule did not show paused")
    assert "none while paused" in card().find_element(By.CSS_SELECTOR, ".next-fires").text
    status = serve_authed.http.get("/api/schedules/nightly", headers=ROOT_TOKEN).json()
    assert status["paused"] is True
    shot(browser, "schedules")
    resume = card().find_element(By.CSS_SELECTOR, 'form[action$="/resume"] button')
    submit_confirmed(browser, resume)
    until(browser, lambda d: "active" in card().find_element(
        By.CSS_SELECTOR, ".schedule-state").text, "the schedule did not show active")
    status = serve_authed.http.get("/api/schedules/nightly", headers=ROOT_TOKEN).json()
    assert status["paused"] is False


def test_queues_and_schedules_on_a_narrow_screen(serve: Served, browser: WebDriver) -> None:
    serve.http.put("/api/queues/a-queue-with-a-rather-long-name-for-a-phone",
                   json={"concurrency": 2, "rateLimit": {"limit": 5, "periodSeconds": 60}})
    serve.http.post("/api/schedules", json={"scheduleId": "every-five-minutes",
                                            "workflowId": "greet", "everySeconds": 300})
    browser.set_window_size(390, 844)
    try:
        for path, name in (("/ui/queues", "queues-390"), ("/ui/schedules", "schedules-390")):
            browser.get(f"{serve.base_url}{path}")
            until(browser, lambda d: d.find_element(By.TAG_NAME, "h1"), "no page")
            sideways = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert sideways <= 0, f"{path} scrolls sideways by {sideways}px at 390px"
            shot(browser, name)
        # the keyboard alone: tab to the first queue's pause button and press Enter
        browser.get(f"{serve.base_url}/ui/queues")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        for _ in range(40):
            active = browser.switch_to.active_element
            if active.tag_name == "button" and "Pause queue" in active.text:
                break
            active.send_keys(Keys.TAB)
        else:
            raise AssertionError("no pause button is reachable with the Tab key")
        active.send_keys(Keys.ENTER)
        alert = until(browser, lambda d: d.switch_to.alert, "no confirmation")
        alert.accept()
        until(browser, lambda d: "paused" in text_of(d, ".notice"), "the queue was not paused")
    finally:
        browser.set_window_size(1280, 900)
