"""A bad file never stops the culler from starting: with garbage in its usage database and a
broken policy file (whose last good copy is beside it) it starts, culls, serves keeps and
the dashboard, and reports both problems in the overview."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from barehub import BareHub
from gpulab.hub.dashboard import render_dashboard
from test_service import report, status, wait_for

HERE_POLICY = Path(__file__).resolve().parent / "policy.yaml"


@pytest.fixture(scope="module")
def degraded_hub(tmp_path_factory):
    state = tmp_path_factory.mktemp("degradedhub")
    policy = state / "policy.yaml"
    # The good policy, as a previous run kept it, and a broken edit made since.
    shutil.copy(HERE_POLICY, state / ".policy.yaml.last-good")
    policy.write_text("version: 1\ngroups: {fast: {profiles: [nope]}}\n")
    (state / "usage.sqlite").write_bytes(b"this is not a database\n" * 512)
    hub = BareHub(state, policy, interval=1.0).start()
    try:
        hub.add_user("admin", ["fast"], admin=True)
        hub.add_user("frank", ["fast"])
        hub.add_user("carol", [])
        yield hub
    finally:
        hub.stop()


def test_culler_culls_and_keeps_with_a_corrupt_usage_db(degraded_hub: BareHub):
    hub = degraded_hub
    server_token = hub.spawn("frank")
    me = hub.user_token("frank")
    hub.request("POST", hub.culler_url("api/v1/activity"), report(0.0), token=server_token)
    wait_for(lambda: status(hub, me)["state"] == "warned", "warning")
    code, body = hub.request("POST", hub.culler_url("api/v1/servers/me/keep"), {}, token=me)
    assert code == 200 and body["state"] == "kept", body
    carol_server = hub.spawn("carol")
    hub.request("POST", hub.culler_url("api/v1/activity"), report(None), token=carol_server)
    wait_for(lambda: not hub.running("carol"), "carol culled")


def test_overview_reports_accounting_and_policy_degraded(degraded_hub: BareHub):
    hub = degraded_hub
    code, body = hub.request(
        "GET", hub.culler_url("api/v1/overview"), token=hub.user_token("admin")
    )
    assert code == 200, body
    accounting = body["usage_accounting"]
    assert accounting["available"] is False
    assert accounting["problem"].startswith("usage accounting unavailable: ")
    assert "not a database" in accounting["problem"]
    assert body["usage"] == [] and body["running"] == []
    policy = body["policy"]
    assert policy["degraded"] is True
    assert policy["fallback"].endswith(".policy.yaml.last-good")
    assert any("nope" in p for p in policy["problems"])
    page = render_dashboard(body, prefix="/services/culler/", xsrf="x")
    assert 'role="alert">usage accounting unavailable: ' in page
    assert "running on the last good copy" in page
    log = hub.log_path.read_text()
    assert "usage accounting unavailable: " in log
    assert "RUNNING DEGRADED on the last good copy" in log
