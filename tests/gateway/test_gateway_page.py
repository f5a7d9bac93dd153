"""The gateway's own jobs page (no server needed): login through the hub, never framed, the
shared page without the parts that need a server, and only the requester's name and XSRF
token in it. The browser journey is tests/browser/test_jobs_page_serverless.py."""

from __future__ import annotations

import json

import httpx
from gateway_testlib import GatewayEnv

PREFIX = "/services/jobs-gateway/"


def _config(html: str) -> dict:
    return json.loads(
        html.split('id="gpulab-config" type="application/json">')[1].split("</script>")[0]
    )


def _never_framed(response: httpx.Response) -> None:
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_a_browser_without_a_session_is_sent_to_the_hub_login(gw: GatewayEnv) -> None:
    for page in ("jobs/", ""):
        r = httpx.get(gw.platform.hub_url + PREFIX + page, follow_redirects=False, timeout=30)
        assert r.status_code == 302, (page, r.status_code, r.text[:200])
        assert "/hub/api/oauth2/authorize" in r.headers["Location"]
        _never_framed(r)


def test_the_page_lists_and_reads_but_has_no_submit_form(gw: GatewayEnv) -> None:
    headers = {"Authorization": f"token {gw.tokens['alice']}"}
    r = httpx.get(gw.platform.hub_url + PREFIX + "jobs/", headers=headers, timeout=30)
    assert r.status_code == 200, r.text[:300]
    _never_framed(r)
    for part in ('id="jobs-table"', 'id="log-view"', 'id="outputs-list"', 'id="cancel-button"'):
        assert part in r.text, part
    for server_part in ('id="submit-form"', 'id="cull-banner"'):
        assert server_part not in r.text, server_part
    config = _config(r.text)
    assert config["apiUrl"] == PREFIX + "api/v1/"
    assert config["user"] == "alice" and config["server"] is False
    assert config["xsrfToken"]
    assert gw.tokens["alice"] not in r.text


def test_the_page_s_script_and_style_are_served_never_framed(gw: GatewayEnv) -> None:
    for name, kind in (("jobs.js", "javascript"), ("jobs.css", "css")):
        r = httpx.get(gw.platform.hub_url + PREFIX + "static/" + name, timeout=30)
        assert r.status_code == 200 and kind in r.headers["Content-Type"], name
        _never_framed(r)
