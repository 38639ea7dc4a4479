"""The dashboard over plain HTTP (no browser): rendering, filters and paging, search,
actions and their errors, sign-in and tenancy, and that every asset is local."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx2 import Response

from ledgerflow._app import Ledgerflow
from ledgerflow.api.ui._render import HERE
from tests.cli.conftest import ROOT

ACME = {"Authorization": "Bearer acme-token"}
GLOBEX = {"Authorization": "Bearer globex-token"}
ROOT_TOKEN = {"Authorization": "Bearer root-token"}


def trigger(client: TestClient, workflow: str, input: Any = None,
            headers: dict[str, str] | None = None, **extra: Any) -> str:
    created = client.post("/api/runs", json={"workflowId": workflow, "input": input, **extra},
                          headers=headers)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def listed(response: Response) -> list[str]:
    """The run ids of a runs page, in order."""
    return re.findall(r'<tr data-run="([^"]+)"', response.text)


def history_length(client: TestClient, run_id: str, headers: dict[str, str] | None = None) -> int:
    return len(client.get(f"/api/runs/{run_id}/history", headers=headers).json()["data"])


# ------------------------------------------------------------------ pages


def test_root_redirects_to_the_dashboard_and_an_open_one_says_so(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui"
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Open dashboard" in page.text and "LEDGERFLOW_API_TOKENS" in page.text


def test_the_list_counts_filters_and_pages(client: TestClient, lf: Ledgerflow) -> None:
    greets = [trigger(client, "greet", i, tags=["batch"]) for i in range(55)]
    failing = trigger(client, "fragile", {"ok": False}, tenantMeta={"tenantId": "acme"})
    lf.engine.run_due(max_runs=100)
    first = client.get("/ui")
    assert listed(first) == [failing, *reversed(greets)][:50]
    assert re.search(r"completed <strong>55</strong>", first.text)
    assert re.search(r"failed <strong>1</strong>", first.text)
    older = re.search(r'href="/ui\?(cursor=[^"]+)" rel="next"', first.text)
    assert older is not None
    second = client.get(f"/ui?{older.group(1).replace('&amp;', '&')}")
    assert listed(second) == list(reversed(greets))[49:]
    assert listed(client.get("/ui?status=failed")) == [failing]
    assert listed(client.get("/ui?workflow=fragile")) == [failing]
    assert listed(client.get("/ui?tenant=acme")) == [failing]
    assert len(listed(client.get("/ui?tag=batch"))) == 50
    assert listed(client.get("/ui?since=2000-01-01&until=2000-01-02")) == []
    assert len(listed(client.get("/ui?since=2000-01-01"))) == 50
    assert listed(client.get("/ui?queue=nowhere")) == []


def test_bad_filters_say_what_is_wrong(client: TestClient) -> None:
    page = client.get("/ui?status=sleeping")
    assert page.status_code == 422 and "status &#39;sleeping&#39; is not one of" in page.text
    page = client.get("/ui?since=yesterday")
    assert page.status_code == 422 and "is not a date (YYYY-MM-DD)" in page.text


def test_the_live_fragment_is_the_table_alone(client: TestClient) -> None:
    run_id = trigger(client, "greet", "x")
    part = client.get("/ui/live?workflow=greet")
    assert part.status_code == 200 and "<html" not in part.text
    assert listed(part) == [run_id]


def test_search_by_id_or_prefix(client: TestClient) -> None:
    ids = [trigger(client, "greet", None, runId=f"order-{n}-abc") for n in (1, 2)]
    found = client.get("/ui?q=order-1", follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/ui/runs/{ids[0]}"
    ambiguous = client.get("/ui?q=order-")
    assert "ambiguous" in ambiguous.text
    assert all(f"/ui/runs/{i}" in ambiguous.text for i in ids)
    missing = client.get("/ui?q=nothing-here")
    assert missing.status_code == 404 and "no run id is or starts with" in missing.text


def test_the_detail_page_shows_error_traceback_journal_and_delivery(
        client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "fragile", {"ok": False})
    lf.engine.run_due()
    lf.relay().run_once()
    page = client.get(f"/ui/runs/{run_id[:8]}").text
    assert "Declined" in page and "card declined" in page and "Traceback" in page
    for event in ("RunCreated", "StepCompleted", "StepFailed", "RunFailed"):
        assert f'<strong class="etype">{event}</strong>' in page
    assert re.search(r"published \d+", page)
    assert page.count('class="bar o-') >= 2
    assert '<option value="second">' in page  # resume from a step of the journal


def test_an_unknown_run_is_a_404_page(client: TestClient) -> None:
    page = client.get("/ui/runs/no-such-run")
    assert page.status_code == 404 and "Run not found" in page.text


# ------------------------------------------------------------------ actions


def test_a_bad_payload_is_refused_and_nothing_is_appended(client: TestClient,
                                                          lf: Ledgerflow) -> None:
    run_id = trigger(client, "booking")
    lf.engine.run_due()
    before = history_length(client, run_id)
    page = client.post(f"/ui/runs/{run_id}/signal", data={"name": "confirm", "payload": "{x"})
    assert page.status_code == 422 and "payload is not valid JSON" in page.text
    page = client.post(f"/ui/runs/{run_id}/signal", data={"name": ""})
    assert page.status_code == 422 and "name" in page.text
    assert history_length(client, run_id) == before


def test_an_action_the_run_forbids_shows_the_api_error(client: TestClient,
                                                       lf: Ledgerflow) -> None:
    run_id = trigger(client, "greet", "x")
    lf.engine.run_due()
    page = client.post(f"/ui/runs/{run_id}/cancel", data={})
    assert page.status_code == 409 and "Refused." in page.text
    api = client.post(f"/api/runs/{run_id}/cancel", json={})
    assert api.json()["error"] in page.text
    page = client.post(f"/ui/runs/{run_id}/resume", data={})
    assert page.status_code == 409
    assert client.post(f"/ui/runs/{run_id}/explode", data={}).status_code == 422


def test_signal_then_rerun_redirect_with_a_notice(client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "booking")
    lf.engine.run_due()
    sent = client.post(f"/ui/runs/{run_id}/signal", data={"name": "confirm"},
                       follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].startswith(f"/ui/runs/{run_id}?")
    lf.engine.run_due()
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "completed"
    again = client.post(f"/ui/runs/{run_id}/rerun", data={}, follow_redirects=False)
    new_id = again.headers["location"].split("/ui/runs/")[1].split("?")[0]
    assert client.get(f"/api/runs/{new_id}").json()["rerunOf"] == run_id


def test_a_form_posted_by_another_site_is_refused(client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "booking")
    lf.engine.run_due()
    before = history_length(client, run_id)
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        page = client.post(f"/ui/runs/{run_id}/cancel", data={}, headers=headers)
        assert page.status_code == 403 and "another site" in page.text
    assert history_length(client, run_id) == before
    same = client.post(f"/ui/runs/{run_id}/cancel", data={}, follow_redirects=False,
                       headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 303


# ------------------------------------------------------------------ auth


def sign_in(client: TestClient, token: str) -> Response:
    response: Response = client.post("/ui/login", data={"token": token, "next": "/ui"},
                                     follow_redirects=False)
    return response


def test_with_tokens_the_dashboard_asks_for_one(authed: TestClient) -> None:
    sent = authed.get("/ui/runs/x", follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/ui/login?next=/ui/runs/x"
    assert authed.get("/ui/login").status_code == 200
    assert authed.get("/ui/static/ui.css").status_code == 200
    refused = sign_in(authed, "wrong")
    assert refused.status_code == 401 and "not one of LEDGERFLOW_API_TOKENS" in refused.text
    signed = sign_in(authed, "acme-token")
    assert signed.status_code == 303 and signed.headers["location"] == "/ui"
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = authed.get("/ui")
    assert page.status_code == 200 and "Open dashboard" not in page.text
    assert authed.get("/api/runs").status_code == 401  # the cookie is for the pages only


def test_sign_in_never_sends_the_browser_elsewhere(authed: TestClient) -> None:
    for target in ("https://example.com/", "//example.com/ui"):
        signed = authed.post("/ui/login", data={"token": "root-token", "next": target},
                             follow_redirects=False)
        assert signed.headers["location"] == "/ui"


def test_a_tenant_sees_only_its_runs(authed: TestClient) -> None:
    ours = trigger(authed, "greet", "a", headers=ACME)
    theirs = trigger(authed, "greet", "g", headers=GLOBEX)
    sign_in(authed, "acme-token")
    assert listed(authed.get("/ui")) == [ours]
    assert authed.get(f"/ui/runs/{ours}").status_code == 200
    assert authed.get(f"/ui/runs/{theirs}").status_code == 404
    assert authed.get(f"/ui?q={theirs}").status_code == 404
    assert authed.get("/ui?tenant=globex").status_code == 403
    assert authed.post(f"/ui/runs/{theirs}/cancel", data={}).status_code == 404
    assert history_length(authed, theirs, GLOBEX) == 1
    assert authed.get("/ui/dead-letters").status_code == 403
    authed.post("/ui/logout")
    assert authed.get("/ui", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------ assets


def test_every_asset_is_served_locally(client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "greet", "x")
    pages = [client.get(p).text for p in ("/ui", f"/ui/runs/{run_id}", "/ui/dead-letters",
                                          "/ui/login", "/docs")]
    for html in pages:
        for url in re.findall(r'(?:src|href)=["\']([^"\']+)', html):
            assert not re.match(r"^(https?:)?//", url), url
            if url.startswith("/ui/static/"):
                assert client.get(url).status_code == 200, url
    assert "/ui/static/swagger-ui/swagger-ui-bundle.js" in pages[-1]
    assert client.get("/redoc").status_code == 404


def test_the_wheel_ships_every_template_and_asset() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["ledgerflow.api.ui"]
    files = [p.relative_to(HERE).as_posix() for p in HERE.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files
    assert Path(HERE / "static" / "swagger-ui" / "swagger-ui-bundle.js").exists()
