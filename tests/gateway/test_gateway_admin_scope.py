"""Admin rights come from the token's scopes, not from the user's admin flag.

The attack: code in an admin's notebook reads ``$JUPYTERHUB_API_TOKEN`` (the server's token,
which belongs to the admin user) and uses it to read alice's job and its outputs through the
gateway. The hub itself refuses that token for anything but the server's own activity; the
gateway now does too, answering 404 exactly as for any user. The admin's own token (which
inherits the ``gpulab-admin`` role) still sees everything, and a non-admin can never get the
admin scope.

``configure(c)`` grants the role to the configured admins, also when the Helm values already
define it (the unit test at the end).
"""

from __future__ import annotations

import json
import os
import urllib.error
from pathlib import Path

import httpx
import pytest
import yaml
from gateway_testlib import command_job
from gpulab.hub.config import configure
from gpulab.hub.services import ADMIN_ROLE, ADMIN_SCOPE, custom_scopes, server_token_scopes
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]


def server_like_token(platform, user: str) -> str:
    """A token with exactly the scopes the hub gives ``user``'s default server (the
    ``!server`` filter resolved as JupyterHub does when it starts the server)."""
    scopes = [s + f"={user}/" if s.endswith("!server") else s for s in server_token_scopes()]
    body = {"note": "as the notebook server's token", "scopes": scopes}
    return platform.api("POST", f"/hub/api/users/{user}/tokens", body)["token"]


def hub_whoami(platform, token: str) -> dict:
    return platform.api("GET", "/hub/api/user", token=token)


@pytest.fixture(scope="module")
def alice_job(gw) -> str:
    with gw.client("alice") as a:
        r = a.post("/jobs", json=command_job("admin-scope", "print('alice only')"))
        assert r.status_code == 201, r.text
        return r.json()["id"]


@pytest.mark.e2e
@pytest.mark.ceph
def test_admin_server_token_is_not_admin_at_the_gateway(gw, alice_job):
    stolen = server_like_token(gw.platform, "admin")
    # The hub: the token is the admin user's, without the admin scope, and may not read alice.
    me = hub_whoami(gw.platform, stolen)
    assert me["name"] == "admin" and ADMIN_SCOPE not in me["scopes"]
    with pytest.raises(urllib.error.HTTPError) as refused:
        gw.platform.api("GET", "/hub/api/users/alice", token=stolen)
    assert refused.value.code in (403, 404)

    headers = {"Authorization": f"token {stolen}"}
    # Own token first, server token next, own token again: the admin right is the token's,
    # never cached with the user.
    for token_user, expect_admin in (("admin", True), (None, False), ("admin", True)):
        client = (
            gw.client(token_user)
            if token_user
            else httpx.Client(base_url=gw.base, headers=headers, timeout=60)
        )
        with client as c:
            assert c.get("/me").json()["admin"] is expect_admin
            if expect_admin:
                assert c.get(f"/jobs/{alice_job}").status_code == 200
                continue
            for r in (
                c.get(f"/jobs/{alice_job}"),
                c.get(f"/jobs/{alice_job}/logs"),
                c.get(f"/jobs/{alice_job}/outputs"),
                c.delete(f"/jobs/{alice_job}"),
            ):
                assert r.status_code == 404, (r.request.url, r.text)
            assert c.get("/jobs", params={"user": "alice"}).json()["items"] == []
            assert alice_job not in [j["id"] for j in c.get("/jobs").json()["items"]]
    # alice's job was not cancelled by the refused DELETE
    with gw.client("alice") as a:
        assert a.get(f"/jobs/{alice_job}").json()["state"] != "Cancelled"


@pytest.mark.e2e
@pytest.mark.ceph
def test_a_non_admin_never_gets_the_admin_scope(gw, alice_job):
    assert ADMIN_SCOPE not in hub_whoami(gw.platform, gw.tokens["alice"])["scopes"]
    assert ADMIN_SCOPE in hub_whoami(gw.platform, gw.tokens["admin"])["scopes"]
    # Asking the hub for a token with the scope is refused: alice does not hold it.
    for token in (gw.tokens["alice"], None):  # alice herself, and the launcher (tokens scope)
        with pytest.raises(urllib.error.HTTPError) as refused:
            gw.platform.api(
                "POST", "/hub/api/users/alice/tokens", {"scopes": [ADMIN_SCOPE]}, token=token
            )
        assert refused.value.code in (400, 403)
    with gw.client("bob") as b:
        assert b.get("/me").json()["admin"] is False
        assert b.get(f"/jobs/{alice_job}").status_code == 404


def _helm_roles() -> list[dict]:
    """``hub.loadRoles`` of the Helm values as the chart hands them to JupyterHub."""
    values = yaml.safe_load((ROOT / "helm-values" / "values.yaml").read_text())
    return [dict(role, name=name) for name, role in values["hub"]["loadRoles"].items()]


def test_configure_grants_the_admin_role_to_the_configured_admins(monkeypatch):
    monkeypatch.setenv("GPULAB_POLICY", "")
    c = Config()
    c.JupyterHub.load_roles = _helm_roles()
    helm_role = next(r for r in c.JupyterHub.load_roles if r["name"] == ADMIN_ROLE)
    helm_role["users"] = ["operator"]
    c.Authenticator.admin_users = {"root"}
    oidc = {"client_id": "gpulab", "admin_groups": {"gpulab-admins"}}
    configure(c, policy_path=ROOT / "tests" / "e2e" / "policy.yaml", oidc=oidc)
    roles = [r for r in c.JupyterHub.load_roles if r["name"] == ADMIN_ROLE]
    assert len(roles) == 1, "JupyterHub refuses a role defined twice"
    assert roles[0]["scopes"] == [ADMIN_SCOPE]
    assert roles[0]["users"] == ["operator", "root"]
    assert roles[0]["groups"] == ["gpulab-admins"]
    assert c.JupyterHub.custom_scopes == custom_scopes()
    # Servers' tokens never carry it.
    assert ADMIN_SCOPE not in c.Spawner.server_token_scopes
    json.dumps(c.JupyterHub.load_roles)  # plain data, as JupyterHub expects


def test_configure_local_grants_it_to_the_demo_admins(monkeypatch):
    monkeypatch.setenv("GPULAB_POLICY", "")
    for key in [k for k in os.environ if k.startswith("GPULAB_OIDC_")]:
        monkeypatch.delenv(key)
    c = Config()
    configure(c, policy_path=ROOT / "tests" / "e2e" / "policy.yaml", local=True)
    (role,) = [r for r in c.JupyterHub.load_roles if r["name"] == ADMIN_ROLE]
    assert role["users"] == sorted(c.Authenticator.admin_users) and role["users"]
