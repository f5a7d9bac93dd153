"""The culler service against a real hub: identity, warn-then-cull, busy GPUs, keep, CPU rule,
group rules, dry-run. Waiting is by polling the service's state with a deadline; assertions are
about states and order (cull never before the warned cull_at), never about elapsed time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from barehub import BareHub

DEADLINE = 60


def report(gpu_pct: float | None, *, busy: bool = False, server_name: str | None = None) -> dict:
    body = {
        "sampled_at": datetime.now(UTC).isoformat(),
        "last_kernel_activity": None,
        "kernels_busy": busy,
        "last_terminal_activity": None,
        "gpus": []
        if gpu_pct is None
        else [
            {
                "index": 0,
                "uuid": "GPU-0",
                "utilization_pct": gpu_pct,
                "memory_used_bytes": 0,
                "memory_total_bytes": 80 << 30,
            }
        ],
    }
    if server_name is not None:
        body["server_name"] = server_name
    return body


def status(hub: BareHub, token: str, server: str = "") -> dict:
    code, body = hub.request(
        "GET", hub.culler_url(f"api/v1/servers/me?server={server}"), token=token
    )
    assert code == 200, body
    return body


def wait_for(pred, what: str):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"gave up waiting for {what}")


def test_identity_rules(culler_hub: BareHub):
    hub = culler_hub
    server_token = hub.spawn("erin")
    user_token = hub.user_token("erin")
    url = hub.culler_url("api/v1/activity")
    # A user's own API token is not a server's token.
    code, body = hub.request("POST", url, report(0), token=user_token)
    assert code == 403 and "server's own token" in body["error"]
    # The server's token cannot report for another server name.
    code, body = hub.request("POST", url, report(0, server_name="other"), token=server_token)
    assert code == 403
    code, _ = hub.request("POST", url, report(0, server_name=""), token=server_token)
    assert code == 200
    # Another user cannot see or keep erin's server: they have no such server.
    frank = hub.user_token("frank")
    code, _ = hub.request("GET", hub.culler_url("api/v1/servers/me"), token=frank)
    assert code == 404
    code, _ = hub.request("POST", hub.culler_url("api/v1/servers/me/keep"), {}, token=frank)
    assert code == 404
    # Admin API: 403 for a non-admin, JSON.
    code, body = hub.request("GET", hub.culler_url("api/v1/usage?since=30d"), token=frank)
    assert code == 403 and body == {"error": "admins only"}
    code, body = hub.request(
        "GET", hub.culler_url("api/v1/usage?since=30d"), token=hub.user_token("admin")
    )
    assert code == 200 and "items" in body
    # Garbage is refused with a reason, not a 500.
    code, body = hub.request("POST", url, {"nope": 1}, token=server_token)
    assert code == 400 and body["field"] == "sampled_at"
    hub.api("DELETE", "/hub/api/users/erin/server")


def test_idle_gpu_server_with_open_tab_is_warned_then_culled(culler_hub: BareHub):
    hub = culler_hub
    server_token = hub.spawn("alice")
    me = hub.user_token("alice")
    code, _ = hub.request(
        "POST", hub.culler_url("api/v1/activity"), report(2.0), token=server_token
    )
    assert code == 200
    # The browser tab is open: the hub's last_activity is refreshed, which must not count.
    hub.api(
        "POST",
        "/hub/api/users/alice/activity",
        {"last_activity": datetime.now(UTC).isoformat()},
        token=server_token,
    )
    warned = wait_for(lambda: (s := status(hub, me)) and s["state"] == "warned" and s, "warning")
    assert "GPU idle" in warned["reason"] and "not counted" in warned["reason"]
    cull_at = datetime.fromisoformat(warned["cull_at"])
    wait_for(lambda: not hub.running("alice"), "cull")
    stopped_seen = datetime.now(UTC)
    assert stopped_seen >= cull_at
    log = hub.log_path.read_text()
    assert "alice/: culling: GPU idle" in log


def test_busy_gpu_without_browser_is_kept(culler_hub: BareHub):
    hub = culler_hub
    server_token = hub.spawn("bob")
    me = hub.user_token("bob")
    started = datetime.now(UTC)
    hub.request("POST", hub.culler_url("api/v1/activity"), report(85.0), token=server_token)
    # Past timeout + warn_before (4 s + 3 s) of the 'fast' group, it is still active.
    s = wait_for(
        lambda: (
            (s := status(hub, me))["decided_at"]
            and (datetime.fromisoformat(s["decided_at"]) - started).total_seconds() > 9
            and s
        ),
        "a decision after the idle rules would have run out",
    )
    assert s["state"] == "active" and "GPU busy" in s["reason"]
    assert hub.running("bob")
    hub.api("DELETE", "/hub/api/users/bob/server")


def test_keep_my_server_within_bounds(culler_hub: BareHub):
    hub = culler_hub
    server_token = hub.spawn("frank")
    me = hub.user_token("frank")
    hub.request("POST", hub.culler_url("api/v1/activity"), report(0.0), token=server_token)
    keep = hub.culler_url("api/v1/servers/me/keep")
    for expected_left in (1, 0):
        wait_for(lambda: status(hub, me)["state"] == "warned", "warning")
        code, body = hub.request("POST", keep, {}, token=me)
        assert code == 200, body
        assert body["state"] == "kept" and body["keeps_left"] == expected_left
        assert hub.running("frank")
    code, body = hub.request("POST", keep, {}, token=me)
    assert code == 409 and "most your group's policy allows is 2" in body["error"]
    wait_for(lambda: not hub.running("frank"), "cull after the keeps ran out")


def test_cpu_server_plain_idle_rule_and_group_rules_differ(culler_hub: BareHub):
    hub = culler_hub
    carol_server = hub.spawn("carol")  # default group: CPU, 4 s timeout
    dave_server = hub.spawn("dave")  # slow group: 1 h
    carol, dave = hub.user_token("carol"), hub.user_token("dave")
    hub.request("POST", hub.culler_url("api/v1/activity"), report(None), token=carol_server)
    hub.request("POST", hub.culler_url("api/v1/activity"), report(None), token=dave_server)
    warned = wait_for(lambda: (s := status(hub, carol))["state"] == "warned" and s, "warning")
    assert warned["reason"].startswith("no kernel or terminal activity")
    assert "GPU" not in warned["reason"]
    d = status(hub, dave)
    assert d["state"] == "idle" and "cullable at" in d["reason"]
    wait_for(lambda: not hub.running("carol"), "carol culled")
    assert hub.running("dave")
    assert status(hub, dave)["state"] == "idle"
    hub.api("DELETE", "/hub/api/users/dave/server")


def test_dry_run_culls_nothing(culler_hub: BareHub):
    """A second culler in dry-run mode (in this process, same hub) decides, never stops."""
    from gpulab.hub.culler.service.cycle import Culler
    from gpulab.hub.culler.service.hub_client import HubClient
    from gpulab.hub.policy import load_policy

    hub = culler_hub
    policy = load_policy(hub.policy)

    class FastRules:  # the dry-run culler judges everyone by the 'fast' group's rules
        def entitlement(self, groups):
            return policy.entitlement(["fast"])

    hub.api("POST", "/hub/api/groups/slow/users", {"users": ["admin"]})  # the service: 1 h
    hub.api("DELETE", "/hub/api/groups/fast/users", {"users": ["admin"]})
    hub.spawn("admin")

    async def run():
        client = HubClient(hub.hub_url + "/hub/api", hub.admin_token, page_size=2)
        # No start-up grace: admin's server ran before this culler started and never reports.
        culler = Culler(client, FastRules, dry_run=True, report_interval=0)
        try:
            results = []
            while not any(r.culled for r in results):
                results.append(await culler.run_cycle())
                await asyncio.sleep(1)
                assert len(results) < DEADLINE
            return results
        finally:
            await client.close()

    results = asyncio.run(run())
    assert any("would cull" in line for line in results[-1].lines)
    assert hub.running("admin")
    hub.api("DELETE", "/hub/api/users/admin/server")
