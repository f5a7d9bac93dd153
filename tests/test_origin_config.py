"""Per-user and per-service origins and frame refusal, as configured (no servers started).

The browser tests (tests/browser/test_origin_isolation.py) show the attacks failing on a
running platform; these check the configuration each deployment gets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gpulab.hub.config import configure
from gpulab.hub.framing import DenyFraming
from tornado.httputil import HTTPHeaders
from traitlets.config import Config

from gpulab.platform import LocalPlatform, PlatformConfig
from gpulab.up import add_arguments

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "e2e" / "policy.yaml"
CHART_SERVICES = [
    {"name": "jobs-gateway", "url": "http://hub:8181"},
    {"name": "culler", "url": "http://hub:8182"},
]


def chart_config() -> Config:
    """What the chart has set when ``hub.extraConfig.gpulab`` runs."""
    c = Config()
    c.JupyterHub.services = [dict(s) for s in CHART_SERVICES]
    return c


def test_subdomain_host_sends_user_pods_to_the_services_directly() -> None:
    c = chart_config()
    configure(c, policy_path=POLICY, subdomain_host="https://gpulab.example.org")

    assert c.JupyterHub.subdomain_host == "https://gpulab.example.org"
    assert c.GPULabSpawner.gateway_url == "http://hub:8181/services/jobs-gateway/"
    assert c.GPULabSpawner.culler_url == "http://hub:8182/services/culler/"


def test_subdomain_host_from_the_helm_values_is_honoured() -> None:
    c = chart_config()
    c.JupyterHub.subdomain_host = "https://gpulab.example.org"
    configure(c, policy_path=POLICY)

    assert c.GPULabSpawner.culler_url == "http://hub:8182/services/culler/"


def test_a_configured_service_url_is_kept() -> None:
    c = chart_config()
    c.GPULabSpawner.gateway_url = "http://gateway.internal/services/jobs-gateway/"
    configure(c, policy_path=POLICY, subdomain_host="https://gpulab.example.org")

    assert c.GPULabSpawner.gateway_url == "http://gateway.internal/services/jobs-gateway/"


def test_without_subdomains_pods_keep_the_proxy_route() -> None:
    c = chart_config()
    configure(c, policy_path=POLICY)

    assert "subdomain_host" not in c.JupyterHub
    assert "gateway_url" not in c.GPULabSpawner


def test_hub_pages_refuse_framing_and_keep_other_headers() -> None:
    c = chart_config()
    c.JupyterHub.tornado_settings = {"headers": {"X-Site": "1"}}
    configure(c, policy_path=POLICY)

    headers = c.JupyterHub.tornado_settings["headers"]
    assert headers == {"X-Site": "1", "X-Frame-Options": "DENY"}


def test_service_answers_get_frame_ancestors_none_added_to_their_policy() -> None:
    headers = HTTPHeaders({"Content-Security-Policy": "default-src 'none'"})
    _, out, _ = DenyFraming(None).transform_first_chunk(200, headers, b"", True)  # type: ignore[arg-type]

    assert out["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert out["X-Frame-Options"] == "DENY"


def test_local_platform_with_subdomains_gives_each_user_and_service_an_origin(
    tmp_path: Path,
) -> None:
    platform = LocalPlatform(PlatformConfig(state_dir=tmp_path, port=8123, subdomains=True))

    assert platform.hub_url == "http://localhost:8123"
    assert platform.bind_url == "http://127.0.0.1:8123"
    assert platform.user_url("alice") == "http://alice.localhost:8123/user/alice/"
    assert (
        platform.service_url("culler") == "http://culler--service.localhost:8123/services/culler/"
    )


def test_gpulab_up_uses_subdomains_unless_told_otherwise() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    assert parser.parse_args([]).single_origin is False
    assert parser.parse_args(["--single-origin"]).single_origin is True


def test_the_gateways_own_origin_is_published_for_command_lines() -> None:
    c = chart_config()
    configure(c, policy_path=POLICY, subdomain_host="https://gpulab.example.org")

    gateway = next(s for s in c.JupyterHub.services if s["name"] == "jobs-gateway")
    assert gateway["info"]["public_url"] == (
        "https://jobs-gateway--service.gpulab.example.org/services/jobs-gateway/"
    )
    user_role = next(r for r in c.JupyterHub.load_roles if r["name"] == "user")
    assert "read:services!service=jobs-gateway" in user_role["scopes"]


def test_a_custom_subdomain_hook_publishes_no_guessed_origin() -> None:
    c = chart_config()
    c.JupyterHub.subdomain_hook = "legacy"
    configure(c, policy_path=POLICY, subdomain_host="https://gpulab.example.org")

    gateway = next(s for s in c.JupyterHub.services if s["name"] == "jobs-gateway")
    assert "public_url" not in gateway.get("info", {})
