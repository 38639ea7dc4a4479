"""The queues and schedules pages over plain HTTP: what they list, their forms going
through the API's rules (validation, 404, tokens that see every tenant) and that a
refused form changes nothing."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from tests.ui.test_pages import ACME, ROOT_TOKEN, sign_in, trigger


def queue(client: TestClient, name: str, headers: dict[str, str] | None = None) -> Any:
    found = [q for q in client.get("/api/queues", headers=headers).json()["data"]
             if q["name"] == name]
    return found[0] if found else None


def queue_card(html: str, name: str) -> str:
    """The queue's card on the page (up to the next card)."""
    start = html.index(f'data-queue="{name}"')
    end = html.find('<section class="card flow"', start)
    return html[start:end if end > 0 else len(html)]


def schedule_card(html: str, schedule_id: str) -> str:
    start = html.index(f'data-schedule="{schedule_id}"')
    end = html.find('<section class="card flow"', start)
    return html[start:end if end > 0 else len(html)]


def stream_length(lf: Ledgerflow, stream: str) -> int:
    return lf.store.stream_version(stream)


# ------------------------------------------------------------------ queues


def test_the_queues_page_lists_limits_and_depth(client: TestClient, lf: Ledgerflow) -> None:
    client.put("/api/queues/payments", json={"concurrency": 3,
                                             "rateLimit": {"limit": 10, "periodSeconds": 60}})
    for n in range(2):
        trigger(client, "greet", n, queue="payments")
    page = client.get("/ui/queues")
    assert page.status_code == 200
    assert '<a href="/ui/queues" aria-current="page">Queues</a>' in page.text
    card = queue_card(page.text, "payments")
    assert re.search(r'class="q-concurrency">3<', card)
    assert re.search(r'class="q-per-key">no limit<', card)
    assert "10 run starts per 60 s" in card
    assert re.search(r'class="q-depth">2<', card)
    assert "▶</span> active" in card and 'href="/ui?queue=payments"' in card
    assert re.search(r'class="q-concurrency">no limit<', queue_card(page.text, "default"))


def test_edit_a_queues_limits(client: TestClient, lf: Ledgerflow) -> None:
    client.put("/api/queues/payments", json={"concurrency": 3, "perKeyConcurrency": 1})
    saved = client.post("/ui/queues/edit", data={
        "name": "payments", "concurrency": "7", "per_key_concurrency": "",
        "rate_limit": "5", "rate_period_seconds": "2"}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"].startswith("/ui/queues?")
    assert queue(client, "payments") | {"depth": 0} == {
        "name": "payments", "concurrency": 7, "perKeyConcurrency": None,
        "rateLimit": {"limit": 5, "periodSeconds": 2.0}, "paused": False, "depth": 0,
        "executing": 0, "oldestWaitingSeconds": None}
    assert "queue &#39;payments&#39; saved" in client.get(saved.headers["location"]).text
    history = lf.store.read_stream("queue:payments")
    assert history[-1].type == "QueueChanged"
    assert history[-1].metadata.get("actor") == "api:*"


def test_a_bad_limit_shows_the_apis_422_and_changes_nothing(client: TestClient,
                                                            lf: Ledgerflow) -> None:
    client.put("/api/queues/payments", json={"concurrency": 3})
    before = stream_length(lf, "queue:payments")
    api = client.put("/api/queues/payments", json={"concurrency": 0})
    assert api.status_code == 422
    page = client.post("/ui/queues/edit", data={"name": "payments", "concurrency": "0"})
    assert page.status_code == 422
    assert "queue &#39;payments&#39; unchanged: invalid_request" in page.text
    assert "concurrency: Input should be greater than 0" in page.text
    assert "concurrency" in api.json()["message"] and "greater than 0" in api.json()["message"]
    for form, words in (({"concurrency": "many"}, "valid integer"),
                        ({"rate_period_seconds": "5"}, "a rate period needs a limit"),
                        ({"rate_limit": "2", "rate_period_seconds": "-1"}, "greater than 0")):
        page = client.post("/ui/queues/edit", data={"name": "payments", **form})
        assert page.status_code == 422 and words in page.text, form
    assert client.post("/ui/queues/edit", data={"concurrency": "1"}).status_code == 422
    assert client.post("/ui/queues/explode", data={"name": "payments"}).status_code == 422
    assert stream_length(lf, "queue:payments") == before
    assert queue(client, "payments")["concurrency"] == 3


def test_create_pause_and_resume_a_queue(client: TestClient) -> None:
    made = client.post("/ui/queues/edit", data={"name": "reports", "concurrency": "2"},
                       follow_redirects=False)
    assert made.status_code == 303 and queue(client, "reports")["concurrency"] == 2
    client.post("/ui/queues/pause", data={"name": "reports"})
    assert queue(client, "reports")["paused"] is True
    card = queue_card(client.get("/ui/queues").text, "reports")
    assert "‖</span> paused" in card and 'action="/ui/queues/resume"' in card
    client.post("/ui/queues/resume", data={"name": "reports"})
    assert queue(client, "reports")["paused"] is False
    missing = client.post("/ui/queues/pause", data={"name": "nowhere"})
    assert missing.status_code == 404 and "no queue &#39;nowhere&#39;" in missing.text


def test_only_a_token_for_every_tenant_changes_a_queue(authed: TestClient) -> None:
    authed.put("/api/queues/payments", json={"concurrency": 3}, headers=ROOT_TOKEN)
    sign_in(authed, "acme-token")
    page = authed.get("/ui/queues")
    assert page.status_code == 200 and 'data-queue="payments"' in page.text  # as GET /api/queues
    for action, form in (("edit", {"concurrency": "9"}), ("pause", {})):
        refused = authed.post(f"/ui/queues/{action}", data={"name": "payments", **form})
        assert refused.status_code == 403 and "every tenant" in refused.text
    assert queue(authed, "payments", ACME)["concurrency"] == 3
    assert queue(authed, "payments", ACME)["paused"] is False
    sign_in(authed, "root-token")
    assert authed.post("/ui/queues/edit", data={"name": "payments", "concurrency": "9"},
                       follow_redirects=False).status_code == 303
    assert queue(authed, "payments", ROOT_TOKEN)["concurrency"] == 9


def test_a_queue_form_from_another_site_is_refused(client: TestClient) -> None:
    page = client.post("/ui/queues/pause", data={"name": "default"},
                       headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 403 and queue(client, "default")["paused"] is False


# ------------------------------------------------------------------ schedules


def create(client: TestClient, schedule_id: str, **spec: Any) -> Any:
    made = client.post("/api/schedules", json={"scheduleId": schedule_id,
                                               "workflowId": "greet", **spec})
    assert made.status_code == 201, made.text
    return made.json()


def schedule(client: TestClient, schedule_id: str) -> Any:
    return client.get(f"/api/schedules/{schedule_id}").json()


def test_the_schedules_page_lists_next_fires(client: TestClient) -> None:
    made = create(client, "hourly", cron="0 * * * *", timezone="Europe/Paris", input="x")
    create(client, "often", everySeconds=90, paused=True)
    page = client.get("/ui/schedules")
    assert page.status_code == 200
    hourly = schedule_card(page.text, "hourly")
    assert "cron <code>0 * * * *</code> (Europe/Paris)" in hourly and "▶</span> active" in hourly
    fires = re.findall(r'<time datetime="([^"]+)">', hourly)
    assert fires and fires[0].startswith(made["nextFireTimes"][0][:16])
    assert 'href="/ui?tag=schedule%3Ahourly"' in hourly
    often = schedule_card(page.text, "often")
    assert "every 1 min 30 s" in often and "‖</span> paused" in often
    assert "none while paused" in often and 'action="/ui/schedules/resume"' in often


def test_pause_resume_trigger_and_delete_a_schedule(client: TestClient) -> None:
    create(client, "hourly", cron="0 * * * *")
    paused = client.post("/ui/schedules/pause", data={"id": "hourly"}, follow_redirects=False)
    assert paused.status_code == 303 and schedule(client, "hourly")["paused"] is True
    client.post("/ui/schedules/resume", data={"id": "hourly"})
    assert schedule(client, "hourly")["paused"] is False
    fired = client.post("/ui/schedules/trigger", data={"id": "hourly"}, follow_redirects=False)
    run_id = schedule(client, "hourly")["lastRunId"]
    assert run_id and run_id.startswith("hourly@")
    assert run_id in client.get(fired.headers["location"]).text
    assert client.get(f"/api/runs/{run_id}").json()["tags"] == ["schedule:hourly"]
    client.post("/ui/schedules/delete", data={"id": "hourly"})
    assert client.get("/api/schedules/hourly").status_code == 404
    missing = client.post("/ui/schedules/pause", data={"id": "hourly"})
    assert missing.status_code == 404 and "no schedule with id &#39;hourly&#39;" in missing.text


def test_create_a_schedule_and_bad_specs_show_the_422(client: TestClient,
                                                      lf: Ledgerflow) -> None:
    made = client.post("/ui/schedules/create", data={
        "id": "nightly", "workflow": "greet", "when": "30 2 * * *", "timezone": "UTC",
        "overlap": "buffer_one", "input": '{"who": "ops"}'}, follow_redirects=False)
    assert made.status_code == 303
    got = schedule(client, "nightly")
    assert (got["cron"], got["overlap"], got["input"]) == ("30 2 * * *", "buffer_one",
                                                           {"who": "ops"})
    every = client.post("/ui/schedules/create", data={"id": "tick", "workflow": "greet",
                                                      "when": "300", "paused": "on"})
    assert every.status_code == 200 and schedule(client, "tick")["everySeconds"] == 300
    api = client.post("/api/schedules", json={"scheduleId": "bad", "workflowId": "greet",
                                              "cron": "every day"})
    assert api.status_code == 422
    page = client.post("/ui/schedules/create", data={"id": "bad", "workflow": "greet",
                                                     "when": "every day"})
    assert page.status_code == 422 and api.json()["message"] in page.text.replace("&#39;", "'")
    assert 'value="every day"' in page.text  # what was typed stays in the form
    for form, status, words in (
            ({"workflow": "nope", "when": "60"}, 404, "nope"),
            ({"workflow": "greet", "when": "60", "timezone": "Mars/Olympus"}, 422, "Mars"),
            ({"workflow": "greet", "when": "60", "input": "{x"}, 422, "not valid JSON"),
            ({"workflow": "greet", "when": ""}, 422, "give a cron expression")):
        page = client.post("/ui/schedules/create", data={"id": "bad", **form})
        assert page.status_code == status and words in page.text, form
    assert client.get("/api/schedules/bad").status_code == 404
    assert lf.store.stream_version("schedule:bad") == 0


def test_edit_a_schedule_and_a_bad_edit_shows_the_422(client: TestClient,
                                                      lf: Ledgerflow) -> None:
    create(client, "hourly", cron="0 * * * *", input={"who": "ops"}, paused=True)
    card = schedule_card(client.get("/ui/schedules").text, "hourly")
    assert 'action="/ui/schedules/update"' in card and 'value="0 * * * *"' in card
    assert "{&#34;who&#34;: &#34;ops&#34;}" in card or '{"who": "ops"}' in card  # prefilled
    saved = client.post("/ui/schedules/update", data={
        "id": "hourly", "workflow": "greet", "when": "120", "overlap": "allow",
        "input": '"ada"'}, follow_redirects=False)
    assert saved.status_code == 303
    got = schedule(client, "hourly")
    assert (got["cron"], got["everySeconds"], got["overlap"], got["input"], got["paused"]) == (
        None, 120, "allow", "ada", True)
    bad = client.post("/ui/schedules/update", data={"id": "hourly", "workflow": "greet",
                                                    "when": "0 25 * * *"})
    assert bad.status_code == 422 and "hour field: 25 is out of range" in bad.text
    edited = schedule_card(bad.text, "hourly")
    assert "<details class=\"edit-schedule\" open>" in edited  # the form stays open
    assert 'value="0 25 * * *"' in edited  # with what was typed
    assert schedule(client, "hourly")["everySeconds"] == 120
    missing = client.post("/ui/schedules/update", data={"id": "gone", "workflow": "greet",
                                                        "when": "60"})
    assert missing.status_code == 404
    assert [r.type for r in lf.store.read_stream("schedule:hourly")] == [
        "ScheduleCreated", "ScheduleUpdated"]


def test_schedules_need_a_token_for_every_tenant(authed: TestClient) -> None:
    authed.post("/api/schedules", json={"scheduleId": "hourly", "workflowId": "greet",
                                        "cron": "0 * * * *"}, headers=ROOT_TOKEN)
    sign_in(authed, "acme-token")
    page = authed.get("/ui/schedules")
    assert page.status_code == 403 and "every tenant" in page.text
    refused = authed.post("/ui/schedules/pause", data={"id": "hourly"})
    assert refused.status_code == 403
    sign_in(authed, "root-token")
    assert authed.get("/api/schedules/hourly", headers=ROOT_TOKEN).json()["paused"] is False
    assert 'data-schedule="hourly"' in authed.get("/ui/schedules").text
