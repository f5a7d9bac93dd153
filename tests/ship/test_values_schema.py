"""helm-values/*.yaml against the Zero to JupyterHub chart's schema, merged as Helm merges
them, and gpulab's own wiring rules that the chart's (permissive) schema cannot know."""

from __future__ import annotations

import copy
import functools
import hashlib
import ipaddress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES_DIR = ROOT / "helm-values"
MANIFESTS = VALUES_DIR / "manifests"
# The chart's values.yaml and values.schema.yaml, vendored (tests/ship/z2jh/README.md).
CHART_DIR = Path(__file__).resolve().parent / "z2jh"
CHART_VALUES = CHART_DIR / "values.yaml"
CHART_SCHEMA = CHART_DIR / "values.schema.yaml"
# Digests of the upstream files: the copies must stay verbatim (replace both when moving to a
# new chart version, as tests/ship/z2jh/README.md says).
CHART_SHA256 = {
    CHART_VALUES: "d61742ce43e33262bb8fa0d68b6b9e7a7b229a3c7ce6d5a08cf97788c0ba796b",
    CHART_SCHEMA: "1d9d48ee343efda1140edfc3de4d8ec4113ae9173bf9e44b83f19c2ca335a0dc",
}

VALUES_FILES = sorted(p.name for p in VALUES_DIR.glob("values*.yaml"))
# The stacks docs/deploy.md installs with (`-f` order).
STACKS = [
    ["values.yaml"],
    ["values.yaml", "values-keycloak.yaml"],
    ["values.yaml", "values-keycloak.yaml", "values-postgres.yaml"],
]


def _refs_or_skip() -> None:
    # Never a skip: a missing copy must fail the suite, not silently pass it.
    assert CHART_VALUES.is_file() and CHART_SCHEMA.is_file(), f"chart files missing in {CHART_DIR}"


def test_vendored_chart_files_are_verbatim() -> None:
    for path, digest in CHART_SHA256.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} was edited"


# ----------------------------------------------------------------------------- Helm merge


def helm_merge(base: Any, override: Any) -> Any:
    """Helm's coalescing of a values file onto the chart's values: maps merge deeply, any
    other value (lists included) replaces, and null deletes the key."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = helm_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@functools.cache
def _chart_values() -> dict[str, Any]:
    return load_yaml(CHART_VALUES)


@functools.cache
def _schema_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load_yaml(CHART_SCHEMA))


def merged(*names: str) -> dict[str, Any]:
    values = copy.deepcopy(_chart_values())
    for name in names:
        values = helm_merge(values, load_yaml(VALUES_DIR / name) or {})
    return values


def schema_errors(values: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
        for e in _schema_validator().iter_errors(values)
    ]


def policy() -> dict[str, Any]:
    cm = next(yaml.safe_load_all((MANIFESTS / "policy-configmap.yaml").read_text()))
    return yaml.safe_load(cm["data"]["policy.yaml"])


def test_helm_merge_semantics() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 1}
    out = helm_merge(base, {"a": {"c": [3], "d": None, "g": 2}, "f": None})
    assert out == {"a": {"b": 1, "c": [3], "g": 2}}
    assert base["a"]["d"] == {"e": 1}, "the merge must not modify its input"


# ----------------------------------------------------------------------------- schema


def test_every_values_file_is_tested() -> None:
    assert {"values.yaml", "values-keycloak.yaml", "values-postgres.yaml"} <= set(VALUES_FILES)
    assert set(VALUES_FILES) == {name for stack in STACKS for name in stack}


@pytest.mark.parametrize("name", VALUES_FILES)
def test_values_file_alone_validates(name: str) -> None:
    _refs_or_skip()
    assert schema_errors(merged(name)) == []


@pytest.mark.parametrize("stack", STACKS, ids=lambda s: "+".join(s))
def test_values_stack_validates(stack: list[str]) -> None:
    _refs_or_skip()
    assert schema_errors(merged(*stack)) == []


@pytest.mark.parametrize(
    "broken, where",
    [
        ({"hub": {"extraConfig": 3}}, "hub.extraConfig"),
        ({"hub": {"bogusKey": 1}}, "hub"),
        ({"singleuser": {"storage": {"type": "nfs"}}}, "singleuser.storage.type"),
        (
            {"singleuser": {"cloudMetadata": {"blockWithIptables": "yes"}}},
            "singleuser.cloudMetadata",
        ),
        ({"cull": {"enabled": "false"}}, "cull.enabled"),
        ({"singleuser": {"image": {"tag": 4}}}, "singleuser.image.tag"),
    ],
)
def test_broken_values_fail(broken: dict[str, Any], where: str) -> None:
    _refs_or_skip()
    errors = schema_errors(helm_merge(merged("values.yaml"), broken))
    assert errors, f"{broken} should not validate"
    assert any(e.startswith(where) or where in e for e in errors), errors


def test_missing_required_section_fails() -> None:
    _refs_or_skip()
    values = merged("values.yaml")
    del values["singleuser"]
    assert any("singleuser" in e for e in schema_errors(values))


# ----------------------------------------------------------------------------- wiring


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    _refs_or_skip()
    return merged(*STACKS[-1])


def _ports(rules: list[dict[str, Any]]) -> set[int]:
    return {p["port"] for rule in rules for p in rule.get("ports", [])}


def test_gpulab_hub_config_is_loaded(full: dict[str, Any]) -> None:
    extra = full["hub"]["extraConfig"]
    assert extra["gpulab"] == "from gpulab.hub.config import configure; configure(c)"
    for key, code in extra.items():
        compile(code, f"hub.extraConfig.{key}", "exec")
    # z2jh runs them in key order: configure(c) first, then the env forwarding.
    assert sorted(extra)[0] == "gpulab"


def test_services_get_the_hub_env_they_need(
    full: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Managed services start with a scrubbed environment; the forwarding snippet gives
    them the API server address and gpulab's secrets, and nothing else of the hub's."""
    services = [dict(v, name=k) for k, v in full["hub"]["services"].items()]
    services.append({"name": "something-else", "command": ["x"]})
    c = SimpleNamespace(JupyterHub=SimpleNamespace(services=services))
    for key, value in {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "GPULAB_S3_ACCESS_KEY": "ak",
        "HARBOR_PASSWORD": "pw",
        "CONFIGPROXY_AUTH_TOKEN": "must-not-leak",
    }.items():
        monkeypatch.setenv(key, value)
    exec(full["hub"]["extraConfig"]["gpulab-services-env"], {"c": c})  # noqa: S102
    by_name = {s["name"]: s for s in c.JupyterHub.services}
    for name in ("jobs-gateway", "culler"):
        env = by_name[name]["environment"]
        assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
        assert env["GPULAB_S3_ACCESS_KEY"] == "ak" and env["HARBOR_PASSWORD"] == "pw"
        assert env["GPULAB_SERVICE_IP"] == "0.0.0.0"  # values win over the hub's env
        assert "CONFIGPROXY_AUTH_TOKEN" not in env
    assert "environment" not in by_name["something-else"]


def test_services_are_reachable_through_the_proxy(full: dict[str, Any]) -> None:
    hub = full["hub"]
    services = hub["services"]
    gateway_cmd = services["jobs-gateway"]["command"]
    culler_cmd = services["culler"]["command"]
    assert gateway_cmd[:3] == ["python3", "-m", "gpulab.hub.jobs.gateway"]
    assert "--GatewayApp.policy_path=/etc/gpulab/policy.yaml" in gateway_cmd
    assert culler_cmd == [
        "python3",
        "-m",
        "gpulab.hub.culler.service",
        "--policy",
        "/etc/gpulab/policy.yaml",
    ]
    service_ports = {p["targetPort"] for p in hub["service"]["extraPorts"]}
    hub_ingress = _ports(hub["networkPolicy"]["ingress"])
    proxy_egress = _ports(full["proxy"]["chp"]["networkPolicy"]["egress"])
    seen: set[int] = set()
    for name, svc in services.items():
        url = svc["url"]
        assert url.startswith("http://hub:"), f"{name}: {url} must be the hub Service"
        port = int(url.rsplit(":", 1)[1])
        assert port not in seen and port != 8081, f"{name}: port {port} is taken"
        seen.add(port)
        assert port in service_ports, f"{name}: hub.service.extraPorts lacks {port}"
        assert port in hub_ingress, f"{name}: hub.networkPolicy.ingress lacks {port}"
        assert port in proxy_egress, f"{name}: proxy.chp.networkPolicy.egress lacks {port}"
        assert svc["environment"]["GPULAB_SERVICE_IP"] == "0.0.0.0"
        assert "apiToken" not in svc and "api_token" not in svc, "tokens are generated"


HUB_POD = {"matchLabels": {"app": "jupyterhub", "component": "hub"}}
SERVER_POD = {"matchLabels": {"app": "jupyterhub", "component": "singleuser-server"}}


def test_every_user_and_service_gets_its_own_origin(full: dict[str, Any]) -> None:
    host = full["hub"]["config"]["JupyterHub"]["subdomain_host"]
    assert host.startswith("https://"), "subdomain_host is the hub's https URL"
    name = host.removeprefix("https://").rstrip("/")
    ingress = full["ingress"]
    assert ingress["enabled"] is True
    assert {name, f"*.{name}"} <= set(ingress["hosts"]), "the hub's host and its subdomains"
    covered = {h for t in ingress["tls"] for h in t["hosts"]}
    assert {name, f"*.{name}"} <= covered, "a wildcard certificate for the subdomains"


def test_user_servers_reach_the_services_directly(full: dict[str, Any]) -> None:
    """With subdomains the proxy routes by host name: user pods call the services at their
    hub.services URLs, so both network policies open those ports between the two pods."""
    ports = {int(s["url"].rsplit(":", 1)[1]) for s in full["hub"]["services"].values()}
    egress = full["singleuser"]["networkPolicy"]["egress"]
    to_hub = [r for r in egress if r["to"] == [{"podSelector": HUB_POD}]]
    assert len(to_hub) == 1 and _ports(to_hub) == ports, to_hub
    ingress = full["hub"]["networkPolicy"]["ingress"]
    from_servers = [r for r in ingress if {"podSelector": SERVER_POD} in r["from"]]
    assert from_servers and ports <= _ports(from_servers), ingress


def test_stock_culler_is_off(full: dict[str, Any]) -> None:
    assert full["cull"]["enabled"] is False


def test_roles_use_real_scopes_and_match_the_services_code(full: dict[str, Any]) -> None:
    from gpulab.hub.services import CULLER, GATEWAY, service_roles
    from jupyterhub.scopes import scope_definitions

    roles = full["hub"]["loadRoles"]
    services = set(full["hub"]["services"])
    custom = full["hub"]["config"]["JupyterHub"]["custom_scopes"]
    assert set(roles) == {"gpulab-jobs-gateway", "gpulab-culler", "gpulab-admin"}
    assert "user" not in roles, "configure(c) owns the user role; two definitions abort the hub"
    for name, role in roles.items():
        for scope in role["scopes"]:
            known = scope.split("!", 1)[0] in scope_definitions or scope in custom
            assert known, f"{name}: unknown scope {scope}"
            assert not scope.startswith("admin"), f"{name}: {scope} is too broad"
            assert scope not in ("servers", "users", "tokens", "groups", "admin-ui")
        assert set(role.get("services", ())) <= services
    culler = set(roles["gpulab-culler"]["scopes"])
    # jupyterhub-idle-culler's documented role, without admin:users (we never delete users)
    assert {"list:users", "read:servers", "delete:servers"} <= culler
    # ... and what the culler's code asks for, with "servers" narrowed to read + delete
    code = next(r for r in service_roles(CULLER) if r["name"] == "gpulab-culler")["scopes"]
    narrowed = {s for s in code if s != "servers"}
    if "servers" in code:
        narrowed |= {"read:servers", "delete:servers"}
    assert culler == narrowed
    gateway = set(roles["gpulab-jobs-gateway"]["scopes"])
    assert not any(s.startswith(("delete:", "start:", "servers")) for s in gateway)
    assert gateway == set(GATEWAY.scopes)


def test_admin_scope_and_role_match_the_services_code(full: dict[str, Any]) -> None:
    """gpulab's admin scope is defined and granted as the code does, and the services' browser
    sessions may carry it."""
    from gpulab.hub.services import ADMIN_ROLE, ADMIN_SCOPE, admin_role, custom_scopes

    assert full["hub"]["config"]["JupyterHub"]["custom_scopes"] == custom_scopes()
    role = full["hub"]["loadRoles"][ADMIN_ROLE]
    code = admin_role()
    assert role["scopes"] == code["scopes"] and role["description"] == code["description"]
    for name in ("jobs-gateway", "culler"):
        assert full["hub"]["services"][name]["oauth_client_allowed_scopes"] == [ADMIN_SCOPE]


def test_policy_is_mounted_as_a_directory(full: dict[str, Any]) -> None:
    hub = full["hub"]
    volume = next(v for v in hub["extraVolumes"] if v["name"] == "gpulab-policy")
    assert volume["configMap"]["name"] == "gpulab-policy"
    mount = next(m for m in hub["extraVolumeMounts"] if m["name"] == "gpulab-policy")
    assert mount["mountPath"] == "/etc/gpulab"
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    cm = next(yaml.safe_load_all((MANIFESTS / "policy-configmap.yaml").read_text()))
    assert cm["metadata"]["name"] == "gpulab-policy" and "policy.yaml" in cm["data"]


def test_singleuser_storage_is_gpulabs(full: dict[str, Any]) -> None:
    su = full["singleuser"]
    assert su["storage"]["type"] == "none"
    assert su["storage"]["homeMountPath"] == policy()["storage"]["home"]["mount_path"]


def test_singleuser_has_no_credentials_and_runs_as_jovyan(full: dict[str, Any]) -> None:
    su = full["singleuser"]
    assert su["uid"] == 1000 and su["fsGid"] == 100
    assert su.get("serviceAccountName") is None
    assert su["extraPodConfig"]["automountServiceAccountToken"] is False
    assert su["allowPrivilegeEscalation"] is False
    # no privileged iptables init container; the network policy blocks the metadata server
    assert su["cloudMetadata"]["blockWithIptables"] is False
    assert su["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False


def test_singleuser_egress_is_dns_s3_registry_only(full: dict[str, Any]) -> None:
    netpol = full["singleuser"]["networkPolicy"]
    assert netpol["enabled"] is True
    rules = netpol["egressAllowRules"]
    assert rules["nonPrivateIPs"] is False and rules["privateIPs"] is False
    assert rules["dnsPortsKubeSystemNamespace"] is True
    assert netpol["ingress"] == [], "ingress stays the chart's: hub and proxy only"
    cidrs = []
    # The one rule that is no address block: the gpulab services in the hub pod
    # (test_user_servers_reach_the_services_directly).
    for rule in [r for r in netpol["egress"] if r["to"] != [{"podSelector": HUB_POD}]]:
        peers = rule["to"]
        assert peers and all(set(p) == {"ipBlock"} for p in peers), rule
        for peer in peers:
            net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            assert net.num_addresses <= 256, f"{net} is too wide for one service"
            cidrs.append(str(net))
        assert rule["ports"], "every egress rule names its ports"
    assert len(cidrs) == 2, "S3 gateway and registry"
    # jobs reach the same S3 gateway (manifests/networkpolicies.yaml)
    jobs = next(yaml.safe_load_all((MANIFESTS / "networkpolicies.yaml").read_text()))
    job_cidrs = {p["ipBlock"]["cidr"] for r in jobs["spec"]["egress"] for p in r.get("to", [])}
    assert job_cidrs <= set(cidrs)


def test_pull_secret_matches_the_policy(full: dict[str, Any]) -> None:
    secret = policy()["catalogue"]["harbor"]["pull_secret"]
    assert secret in full["imagePullSecrets"]
    assert secret in full["singleuser"]["image"]["pullSecrets"]


def test_images_are_pinned(full: dict[str, Any]) -> None:
    for where in ("hub", "singleuser"):
        tag = full[where]["image"]["tag"]
        assert tag not in ("", "latest", "set-by-chartpress"), f"{where}.image.tag = {tag!r}"


def test_keycloak_authenticator(full: dict[str, Any]) -> None:
    from jupyterhub.app import JupyterHub
    from oauthenticator.generic import GenericOAuthenticator

    config = full["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "generic-oauth"
    known = set(GenericOAuthenticator.class_trait_names(config=True))
    generic = config["GenericOAuthenticator"]
    assert set(generic) <= known, f"unknown traits: {set(generic) - known}"
    assert set(config["JupyterHub"]) <= set(JupyterHub.class_trait_names(config=True))
    assert generic["manage_groups"] is True and generic["auth_state_groups_key"]
    assert "client_secret" not in generic, "secrets are given at install, never committed"


def test_postgres_option() -> None:
    _refs_or_skip()
    db = merged("values.yaml", "values-postgres.yaml")["hub"]["db"]
    assert db["type"] == "postgres"
    assert db["url"].startswith("postgresql")
    assert not db.get("password"), "the password is given at install, never committed"
    # the base keeps the chart's SQLite-on-PVC default
    assert merged("values.yaml")["hub"]["db"]["type"] == "sqlite-pvc"
