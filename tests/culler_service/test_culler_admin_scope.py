"""Admin rights at the culler come from the token's scopes, not from the user's admin flag.

The attack: code in an admin's notebook takes the server's ``$JUPYTERHUB_API_TOKEN`` (it
belongs to the admin user) and stops another user's server through the culler's admin API,
which the hub itself refuses with that token. Now the culler refuses it too (403), while the
admin's own token, which carries ``custom:gpulab:admin``, still stops servers.
"""

from __future__ import annotations

import contextlib
import time
import urllib.error

from barehub import BareHub
from gpulab.hub.services import ADMIN_SCOPE

ADMIN_PAGES = (
    "api/v1/usage?since=30d",
    "api/v1/overview",
    "api/v1/export/usage.csv",
    "api/v1/export/running.csv",
    "dashboard/",
)


def _wait_stopped(hub: BareHub, user: str) -> None:
    deadline = time.monotonic() + 60
    while hub.running(user):
        assert time.monotonic() < deadline, f"{user}'s server never stopped"
        time.sleep(0.3)


def test_admin_server_token_cannot_stop_another_users_server(culler_hub: BareHub):
    hub = culler_hub
    # The 'slow' group's 1 h idle rules: no cull in the middle of the test.
    hub.api("POST", "/hub/api/groups/slow/users", {"users": ["admin"]})
    hub.api("DELETE", "/hub/api/groups/fast/users", {"users": ["admin"]})
    try:
        hub.spawn("dave")  # group 'slow'
        stolen = hub.spawn("admin")  # the admin's notebook server's own token
        code, me = hub.request("GET", "/hub/api/user", token=stolen)
        assert code == 200 and me["name"] == "admin" and me["admin"] is True
        assert ADMIN_SCOPE not in me["scopes"]
        # The hub refuses it for dave's server ...
        code, _ = hub.request("DELETE", "/hub/api/users/dave/server", token=stolen)
        assert code in (403, 404)
        # ... and so does the culler, everywhere admins only may go.
        stop = hub.culler_url("api/v1/admin/servers/stop")
        code, body = hub.request("POST", stop, {"user": "dave", "server": ""}, token=stolen)
        assert code == 403 and body == {"error": "admins only"}
        for page in ADMIN_PAGES:
            code, _ = hub.request("GET", hub.culler_url(page), token=stolen)
            assert code == 403, page
        code, body = hub.request("POST", hub.culler_url("api/v1/cycle"), {}, token=stolen)
        assert code == 403 and body == {"error": "admins only"}
        assert hub.running("dave")

        # The admin's own token carries the scope and still acts as admin.
        own = hub.user_token("admin")
        code, me = hub.request("GET", "/hub/api/user", token=own)
        assert ADMIN_SCOPE in me["scopes"]
        for page in ADMIN_PAGES:
            code, _ = hub.request("GET", hub.culler_url(page), token=own)
            assert code == 200, page
        code, body = hub.request("POST", stop, {"user": "dave", "server": ""}, token=own)
        assert code == 400 and body["errors"][0]["field"] == "reason"
        reason = {"user": "dave", "server": "", "reason": "maintenance of the GPU nodes"}
        code, body = hub.request("POST", stop, reason, token=own)
        assert code == 202, body
        assert body["message"] == "Stopped dave's default server"
        _wait_stopped(hub, "dave")
    finally:
        for user in ("admin", "dave"):
            with contextlib.suppress(urllib.error.HTTPError):
                hub.api("DELETE", f"/hub/api/users/{user}/server")
        hub.api("POST", "/hub/api/groups/fast/users", {"users": ["admin"]})
        hub.api("DELETE", "/hub/api/groups/slow/users", {"users": ["admin"]})


def test_a_non_admin_token_never_carries_the_admin_scope(culler_hub: BareHub):
    hub = culler_hub
    alice = hub.user_token("alice")
    code, me = hub.request("GET", "/hub/api/user", token=alice)
    assert code == 200 and ADMIN_SCOPE not in me["scopes"]
    # Neither alice nor a service with the `tokens` scope can mint one for her.
    for token in (alice, None):
        code, _ = hub.request(
            "POST", "/hub/api/users/alice/tokens", {"scopes": [ADMIN_SCOPE]}, token=token
        )
        assert code in (400, 403)
    stop = hub.culler_url("api/v1/admin/servers/stop")
    code, _ = hub.request("POST", stop, {"user": "dave", "server": ""}, token=alice)
    assert code == 403
