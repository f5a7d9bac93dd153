"""The hub's navigation bar links to the jobs gateway's page and the GPU dashboard, where a
browser on the hub's pages reaches them (no servers started; the browser journey is
tests/browser/test_jobs_page_serverless.py)."""

from __future__ import annotations

from pathlib import Path

from gpulab.hub.config import configure
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "e2e" / "policy.yaml"
SERVICES = [
    {"name": "jobs-gateway", "url": "http://hub:8181"},
    {"name": "culler", "url": "http://hub:8182"},
]


def _configured(**kwargs) -> Config:
    c = Config()
    c.JupyterHub.services = [dict(s) for s in SERVICES]
    configure(c, policy_path=POLICY, **kwargs)
    return c


def test_with_subdomains_the_links_go_to_each_service_s_origin() -> None:
    links = _configured(subdomain_host="https://gpulab.example.org").JupyterHub.template_vars[
        "gpulab_links"
    ]
    assert links == {
        "jobs": "https://jobs-gateway--service.gpulab.example.org/services/jobs-gateway/jobs/",
        "dashboard": "https://culler--service.gpulab.example.org/services/culler/dashboard/",
    }


def test_on_one_origin_the_links_are_under_the_hub_s_base_url() -> None:
    c = Config()
    c.JupyterHub.base_url = "/lab-a/"
    c.JupyterHub.services = [dict(s) for s in SERVICES]
    configure(c, policy_path=POLICY)
    assert c.JupyterHub.template_vars["gpulab_links"] == {
        "jobs": "/lab-a/services/jobs-gateway/jobs/",
        "dashboard": "/lab-a/services/culler/dashboard/",
    }


def test_the_notices_stay_beside_the_links() -> None:
    assert {"gpulab_notices", "gpulab_links"} <= set(_configured().JupyterHub.template_vars)
