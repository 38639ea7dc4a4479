"""The run page keeps what a run's stream fixes between views (`_detail.Settled`):
what it shows must still be the run as it is now: new events, delivery states that
moved, the caller's tenancy, and one database's runs never shown for another's.
And the list's status counts: exact across tenants, counted up to a cap for one."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from ledgerflow._app import Ledgerflow
from ledgerflow.api.ui import _detail
from ledgerflow.projections import queries
from tests.ui.test_pages import ACME, ROOT_TOKEN, sign_in, trigger


def events_shown(html: str) -> list[str]:
    return re.findall(r'<strong class="etype">([^<]+)</strong>', html)


def test_a_run_that_moved_on_is_read_again(client: TestClient, lf: Ledgerflow) -> None:
    run_id = trigger(client, "booking")
    lf.engine.run_due()
    before = client.get(f"/ui/runs/{run_id}").text
    assert "RunCompleted" not in events_shown(before)
    kept = _detail.kept(lf).get(run_id, client.get(f"/api/runs/{run_id}").json()["version"])
    assert kept is not None  # the second view is served from what was kept
    client.post(f"/api/runs/{run_id}/signals", json={"name": "confirm"})
    lf.engine.run_due()
    after = client.get(f"/ui/runs/{run_id}").text
    assert events_shown(after)[-1] == "RunCompleted"
    assert len(events_shown(after)) == len(client.get(f"/api/runs/{run_id}/history")
                                           .json()["data"])
    assert 'class="run-status"><span class="status s-completed"' in after
    assert 'class="run-status"><span class="status s-suspended"' in before


def test_delivery_states_that_move_are_asked_again(client: TestClient,
                                                   lf: Ledgerflow) -> None:
    run_id = trigger(client, "greet", "x")
    lf.engine.run_due()
    first = client.get(f"/ui/runs/{run_id}").text
    events = len(events_shown(first))
    assert re.search(rf"pending {events}\b", first) and "published" not in first
    assert client.get(f"/ui/runs/{run_id}").text == first
    lf.relay().run_once()
    second = client.get(f"/ui/runs/{run_id}").text
    assert re.search(rf"published {events}\b", second) and "pending" not in second
    assert second.count(">published</span>") == events  # each event's row too


def test_a_kept_run_is_still_hidden_from_another_tenant(authed: TestClient) -> None:
    theirs = trigger(authed, "greet", "g", headers={"Authorization": "Bearer globex-token"})
    sign_in(authed, "root-token")
    assert authed.get(f"/ui/runs/{theirs}").status_code == 200
    sign_in(authed, "acme-token")
    assert authed.get(f"/ui/runs/{theirs}").status_code == 404
    assert authed.get(f"/api/runs/{theirs}", headers=ACME).status_code == 404
    assert authed.get(f"/api/runs/{theirs}", headers=ROOT_TOKEN).status_code == 200


def test_what_is_kept_is_per_database_and_bounded(lf: Ledgerflow) -> None:
    keep = _detail.kept(lf)
    assert _detail.kept(lf) is keep
    def settled(events: int) -> _detail.Settled:
        return _detail.Settled(1, [None] * events, [], (None, None), "", {}, "")  # type: ignore

    for n in range(_detail.SETTLED + 5):
        keep.put(f"run-{n}", settled(1))
    assert keep.get("run-0", 1) is None and keep.get(f"run-{_detail.SETTLED + 4}", 1)
    assert keep.get(f"run-{_detail.SETTLED + 4}", 2) is None  # another version
    half = _detail.SETTLED_EVENTS // 2
    keep.put("big-1", settled(half))
    keep.put("big-2", settled(half))  # the small ones go first, to make room
    assert keep.get("big-1", 1) and keep.get("big-2", 1)
    assert keep.get(f"run-{_detail.SETTLED + 4}", 1) is None
    keep.put("small", settled(1))
    assert keep.get("big-1", 1) is None and keep.get("big-2", 1) and keep.get("small", 1)
    keep.put("huge", settled(_detail.SETTLED_EVENTS + 1))
    assert keep.get("huge", 1) is None and keep.get("big-2", 1)
    other = Ledgerflow.open(lf.settings, registry=lf.engine.registry, upgrade=False)
    try:
        assert _detail.kept(other) is not keep
        assert _detail.kept(other).get(f"run-{_detail.SETTLED + 4}", 1) is None
    finally:
        other.close()


def test_status_counts_are_exact_across_tenants_and_capped_for_one(
        client: TestClient, lf: Ledgerflow, monkeypatch: Any) -> None:
    monkeypatch.setattr(queries, "COUNT_CAP", 3)
    for n in range(5):
        trigger(client, "greet", n, tenantMeta={"tenantId": "acme"})
    trigger(client, "booking")
    lf.engine.run_due()
    every = client.get("/ui").text
    assert re.search(r"completed <strong>5</strong>", every)  # the maintained counts
    assert re.search(r"suspended <strong>1</strong>", every)
    assert re.search(r"all <strong>6</strong>", every)
    acme = client.get("/ui?tenant=acme").text
    assert re.search(r"completed <strong>3\+</strong>", acme)  # counted up to the cap
    assert re.search(r"suspended <strong>0</strong>", acme)
    assert re.search(r"all <strong>3\+</strong>", acme)
