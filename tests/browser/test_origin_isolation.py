"""Origin isolation in headless Chromium: a page one user serves cannot act as another.

bob writes an HTML page into his home, under ``~/.local/share/jupyter/labextensions/``, which
JupyterLab serves to anyone, without login and as ``text/html``, from his server. On one origin
for everyone, alice opening it listed her jobs and submitted one as her through
``/user/alice/gpulab/api``, and an admin opening it read the culler dashboard (its XSRF token
in a meta tag) and cancelled alice's job with it. On the platform ``gpulab up`` runs (every
server and service on its own subdomain) the same page, in the same browser, reads nothing and
changes nothing: it tries the path on its own origin and the victim's absolute URL, a pop-up
and an iframe of the victim's page (to read its XSRF token), ``fetch`` with credentials and a
no-CORS "simple" POST. The subdomains hang off ``gpulab.localhost``, so that bob's and alice's
servers are one *site* apart as in production and the browser sends alice's SameSite cookies
along: what stops the page is the origin (no readable answer, no XSRF token), not SameSite.

A control runs the same page from alice's own origin, where it may read her jobs, so a broken
attack script cannot pass for isolation. The last tests check the frame-refusing headers of
every kind of gpulab answer over HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in, server_model, stop_server, through_proxy
from tests.gateway.gateway_testlib import command_job

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.ceph]

VICTIM = "alice"
ATTACKER = "bob"
ADMIN = "admin"
IMAGE = "harbor.local/shared/scipy:2024.10"  # tests/e2e/policy.yaml allows it for alice
PAGE = "lab/extensions/x/static/attack.html"  # under the attacker's server URL
PAGE_DIR = Path(".local/share/jupyter/labextensions/x/static")  # in the attacker's home
READY_DEADLINE = 120.0  # seconds for a server to start on a 2-core machine
ATTACK_DEADLINE = 120_000  # ms for the page's attempts to settle (each look waits 10 s)

# The attacker's page. ``targets`` are base URLs (the path on the page's own origin, and the
# victim's absolute URL); each attempt records its status, response type and readable body.
ATTACK_HTML = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>cat pictures</title></head>
<body><pre id="out">working</pre><script>
(async () => {
  const q = new URLSearchParams(location.search);
  const targets = JSON.parse(q.get("targets"));
  const results = [];
  const settle = 10000;  // ms an iframe or a pop-up gets to load
  async function attempt(what, url, init) {
    const entry = {what, url};
    try {
      const r = await fetch(url, {credentials: "include", ...(init || {})});
      entry.status = r.status;
      entry.type = r.type;
      entry.body = (await r.text().catch(() => "")).slice(0, 4000);
    } catch (e) {
      entry.error = String(e);
    }
    results.push(entry);
    return entry;
  }
  const token = (text, re) => { const m = (text || "").match(re); return m ? m[1] : ""; };
  // The victim's page in a frame or a pop-up: same-origin, its document (and the XSRF token
  // in it) is the attacker's to read.
  function look(what, url, re, how) {
    return new Promise((resolve) => {
      let win = null, frame = null;
      if (how === "frame") {
        frame = document.createElement("iframe");
        frame.src = url;
        document.body.appendChild(frame);
      } else {
        win = window.open(url, "_blank");
      }
      const started = Date.now();
      const poll = () => {
        let text = "";
        try {
          const doc = frame ? frame.contentDocument : win && win.document;
          text = doc && doc.documentElement ? doc.documentElement.outerHTML : "";
        } catch (e) { text = ""; }
        const found = token(text, re);
        if (found || Date.now() - started > settle) {
          if (win) win.close();
          results.push({what, url, body: found ? text.slice(0, 4000) : ""});
          resolve(found);
        } else {
          setTimeout(poll, 250);
        }
      };
      poll();
    });
  }
  for (const base of targets) {
    if (q.get("mode") === "jobs") {
      const spec = JSON.stringify({name: "stolen", image: q.get("image"),
                                   command: ["python", "-c", "print('pwned')"]});
      const page = base + "gpulab/jobs";
      const re = /"xsrfToken":\s*"([^"]+)"/;
      const xsrf = (await look("jobs page (pop-up)", page, re, "popup"))
        || token((await attempt("jobs page", page)).body, re);
      await attempt("list jobs", base + "gpulab/api/jobs", {headers: {"X-XSRFToken": xsrf}});
      await attempt("submit (cors)", base + "gpulab/api/jobs", {method: "POST",
        headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf}, body: spec});
      await attempt("submit (simple)", base + "gpulab/api/jobs?_xsrf=" + xsrf,
        {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: spec});
    } else {
      const dash = base + "dashboard/";
      const re = /name="xsrf" content="([^"]+)"/;
      const xsrf = (await look("dashboard (frame)", dash, re, "frame"))
        || (await look("dashboard (pop-up)", dash, re, "popup"))
        || token((await attempt("dashboard", dash)).body, re);
      await attempt("usage", base + "api/v1/usage", {headers: {"X-XSRFToken": xsrf}});
      const cancel = base + "api/v1/admin/jobs/" + q.get("job") + "/cancel";
      const reason = JSON.stringify({reason: "a well-formed reason"});  // only the origin may stop it
      await attempt("cancel (cors)", cancel, {method: "POST",
        headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf}, body: reason});
      await attempt("cancel (simple)", cancel + "?_xsrf=" + xsrf,
        {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: reason});
    }
  }
  window.attackResults = results;
  document.getElementById("out").textContent = JSON.stringify(results, null, 1);
})();
</script></body></html>
"""


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll a state until it holds (the bound only ends a stuck test)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not the case after {timeout:.0f}s")
        time.sleep(0.5)


def plant_page(platform: Any, owner: str) -> str:
    """Write the attack page into ``owner``'s home (as the pod's files are kept by kubesim);
    returns its URL on ``owner``'s server."""
    home = platform.state_dir / "kubesim" / "volumes" / "default" / f"home-{owner}"
    folder = home / PAGE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attack.html").write_text(ATTACK_HTML)
    for path in [home / ".local", *(home / ".local").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return platform.user_url(owner) + PAGE


def run_attack(page: Any, url: str, **params: Any) -> list[dict[str, Any]]:
    """Open the attack page with ``params`` and return what each of its attempts got."""
    query = {k: json.dumps(v) if isinstance(v, list) else v for k, v in params.items()}
    page.goto(f"{url}?{urlencode(query)}")
    page.wait_for_function("window.attackResults !== undefined", timeout=ATTACK_DEADLINE)
    return page.evaluate("window.attackResults")


def read(results: list[dict[str, Any]], what: str, marker: str) -> list[dict[str, Any]]:
    """The attempts named ``what`` whose answer the page could read and that held ``marker``."""
    return [
        r for r in results if r["what"] == what and r.get("status") == 200 and marker in r["body"]
    ]


def gateway(platform: Any, token: str) -> httpx.Client:
    url, headers = through_proxy(platform, platform.service_url("jobs-gateway") + "api/v1")
    return httpx.Client(
        base_url=url, headers={**headers, "Authorization": f"token {token}"}, timeout=60
    )


def job_ids(platform: Any, owner: str) -> set[str]:
    """The ids of every job ``owner`` has, as the gateway lists them to ``owner``."""
    with gateway(platform, platform.user_token(owner)) as gw:
        r = gw.get("/jobs", params={"limit": 500})
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["items"]}


@pytest.fixture(scope="module")
def isolated(origin_platform: Any) -> Iterator[Any]:
    """The subdomain platform with alice's and bob's servers running (stopped at the end)."""
    if origin_platform.s3 is None:
        pytest.fail("these tests need the Ceph S3 gateway (jobs): install Ceph (`./dev.sh test`)")
    for name in (VICTIM, ATTACKER):
        origin_platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu"})
    try:
        for name in (VICTIM, ATTACKER):
            wait_for(
                f"{name}'s server ready",
                lambda n=name: bool((server_model(origin_platform, n) or {}).get("ready")),
                READY_DEADLINE,
            )
        yield origin_platform
    finally:
        for name in (VICTIM, ATTACKER):
            stop_server(origin_platform, name)


@pytest.fixture(scope="module")
def victim_job(isolated: Any) -> Iterator[str]:
    """A job of alice's that runs until cancelled."""
    with gateway(isolated, isolated.user_token(VICTIM)) as gw:
        r = gw.post("/jobs", json=command_job("victim", "import time; time.sleep(900)"))
        assert r.status_code in (200, 201, 202), r.text
        job_id = r.json()["id"]

        def running() -> bool:
            return gw.get(f"/jobs/{job_id}").json()["state"] == "Running"

        wait_for(f"job {job_id} running", running, READY_DEADLINE)
        yield job_id
        gw.post(f"/jobs/{job_id}/cancel")


def alice_targets(platform: Any) -> list[str]:
    """Where the page looks for alice's jobs API: the path on its own origin, and alice's."""
    return [f"/user/{VICTIM}/", platform.user_url(VICTIM)]


def test_bobs_page_opened_by_alice_cannot_read_or_submit_her_jobs(
    isolated: Any, victim_job: str, context: Any
) -> None:
    url = plant_page(isolated, ATTACKER)
    before = job_ids(isolated, VICTIM)
    page = log_in(context, isolated.hub_url, VICTIM, next_path="/hub/home")
    page.goto(isolated.user_url(VICTIM) + "gpulab/jobs")  # alice's session with her server
    results = run_attack(page, url, mode="jobs", targets=alice_targets(isolated), image=IMAGE)

    assert not read(results, "list jobs", '"items"'), results
    assert not [r for r in results if "xsrfToken" in r.get("body", "")], results
    assert job_ids(isolated, VICTIM) == before, "a job was submitted as alice"


def test_the_attack_page_works_on_alices_own_origin(isolated: Any, context: Any) -> None:
    """The control: the page reads alice's jobs when it is alice's own (same origin)."""
    url = plant_page(isolated, VICTIM)
    page = log_in(context, isolated.hub_url, VICTIM, next_path="/hub/home")
    page.goto(isolated.user_url(VICTIM) + "gpulab/jobs")
    results = run_attack(page, url, mode="jobs", targets=[f"/user/{VICTIM}/"], image="")

    assert read(results, "list jobs", '"items"'), results


def test_bobs_page_opened_by_an_admin_cannot_read_the_dashboard_or_cancel_a_job(
    isolated: Any, victim_job: str, context: Any
) -> None:
    url = plant_page(isolated, ATTACKER)
    dashboard = isolated.service_url("culler") + "dashboard/"
    page = log_in(context, isolated.hub_url, ADMIN, next_path="/hub/home")
    response = page.goto(dashboard)  # the admin's session with the culler
    assert response is not None and response.status == 200
    # The dashboard serves a snapshot rebuilt every few seconds, and refreshes itself.
    expect(page.locator(f'button.cancel[data-job="{victim_job}"]')).to_have_count(1, timeout=60_000)

    results = run_attack(
        page,
        url,
        mode="admin",
        job=victim_job,
        targets=["/services/culler/", isolated.service_url("culler")],
    )

    assert not [r for r in results if 'name="xsrf"' in r.get("body", "")], results
    assert not read(results, "usage", '"items"'), results
    # Not even rendered out of the page's sight: the browser refused to frame it.
    assert not [f.url for f in page.frames if f.url.startswith(dashboard)], results
    with gateway(isolated, isolated.user_token(VICTIM)) as gw:
        assert gw.get(f"/jobs/{victim_job}").json()["state"] == "Running"


# ------------------------------------------------------------------ headers, over HTTP


def frame_headers(platform: Any, url: str, token: str = "") -> httpx.Headers:
    loopback, headers = through_proxy(platform, url)
    if token:
        headers["Authorization"] = f"token {token}"
    return httpx.get(loopback, headers=headers, timeout=30).headers


@pytest.mark.parametrize(
    "where",
    [
        "hub login page",
        "jobs gateway API",
        "jobs gateway error",
        "culler dashboard",
        "culler dashboard static",
        "culler API error",
        "jobs page",
        "jobs page static",
        "extension API",
    ],
)
def test_every_gpulab_answer_refuses_framing(isolated: Any, where: str) -> None:
    admin = isolated.user_token(ADMIN)
    alice = isolated.user_token(VICTIM)
    gw = isolated.service_url("jobs-gateway")
    culler = isolated.service_url("culler")
    server = isolated.user_url(VICTIM)
    url, token = {
        "hub login page": (isolated.hub_url + "/hub/login", ""),
        "jobs gateway API": (gw + "api/v1/me", alice),
        "jobs gateway error": (gw + "api/v1/jobs", ""),
        "culler dashboard": (culler + "dashboard/", admin),
        "culler dashboard static": (culler + "dashboard/static/dashboard.js", ""),
        "culler API error": (culler + "api/v1/usage", alice),
        "jobs page": (server + "gpulab/jobs", alice),
        "jobs page static": (server + "gpulab/static/jobs.js", ""),
        "extension API": (server + "gpulab/api/jobs", alice),
    }[where]
    headers = frame_headers(isolated, url, token)
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), dict(headers)
    assert headers.get("X-Frame-Options") == "DENY", dict(headers)


def test_a_laptop_finds_the_gateways_own_origin_through_the_hub(origin_platform: Any) -> None:
    from extensions.client import locate_gateway

    token = origin_platform.user_token("alice", note="laptop")
    # Asked at the hub's loopback address: this machine's resolver knows no *.localhost.
    found = locate_gateway(origin_platform.bind_url, token)
    assert found == origin_platform.service_url("jobs-gateway")
