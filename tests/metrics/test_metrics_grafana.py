"""helm-values/grafana/gpulab.json: a dashboard Grafana can import (the model's required
fields) whose every query names only metrics that gpulab (gpulab.hub.metrics.exported_names)
or JupyterHub exports; and docs/metrics.md describes every gpulab metric."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jupyterhub.metrics
import yaml
from gpulab.hub.metrics import exported_names, sample_names
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "helm-values" / "grafana" / "gpulab.json"
MONITORING = ROOT / "helm-values" / "monitoring"
DOCS = ROOT / "docs" / "metrics.md"

# PromQL words that are not metric names (functions are recognised by their "(").
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
KEYWORDS |= {"unless", "offset", "bool", "inf", "nan"}


def jupyterhub_names() -> set[str]:
    metrics = [m for m in vars(jupyterhub.metrics).values() if isinstance(m, MetricWrapperBase)]
    return sample_names(f for m in metrics for f in m.describe())


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if word.lower() not in KEYWORDS:
            names.add(word)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in model["panels"]:
        out.append(panel)
        out.extend(panel.get("panels") or [])  # a collapsed row holds its panels
    return out


def test_the_dashboard_has_the_models_required_fields() -> None:
    model = dashboard()
    assert isinstance(model["title"], str) and model["title"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", model["uid"])
    assert isinstance(model["schemaVersion"], int)
    assert model["panels"]
    ids = [p["id"] for p in panels(model)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels(model):
        assert {"type", "title", "gridPos"} <= panel.keys(), panel
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"], panel["title"]


def test_every_query_names_only_metrics_gpulab_or_jupyterhub_exports() -> None:
    known = exported_names() | jupyterhub_names()
    for panel in panels(dashboard()):
        for target in panel.get("targets") or []:
            unknown = metric_names(target["expr"]) - known
            assert not unknown, f"{panel['title']}: {sorted(unknown)} are not exported"


def test_the_query_parser_finds_the_metric_and_not_the_labels() -> None:
    expr = 'sum by (group) (rate(gpulab_jobs_submits_total{outcome="refused"}[5m])) / x_y'
    assert metric_names(expr) == {"gpulab_jobs_submits_total", "x_y"}


def test_the_dashboard_shows_every_gpulab_metric_family() -> None:
    used = set().union(
        *(metric_names(t["expr"]) for p in panels(dashboard()) for t in p.get("targets") or [])
    )
    families = {n for n in exported_names() if not n.endswith("_created")}
    shown = {n for n in families if n in used or f"{n}_bucket" in used}
    bases = {re.sub(r"_(bucket|sum|count)$", "", n) for n in families}
    assert {re.sub(r"_(bucket|sum|count)$", "", n) for n in shown} == bases


def test_the_docs_describe_every_gpulab_metric() -> None:
    text = DOCS.read_text()
    for name in exported_names():
        if name.endswith("_created"):
            continue  # prometheus_client's creation time of a counter or histogram
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert f"`{base}`" in text, f"docs/metrics.md does not describe {base}"


def test_the_servicemonitor_scrapes_all_three_with_the_prometheus_services_token() -> None:
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    endpoints = monitor["spec"]["endpoints"]
    assert {e["path"] for e in endpoints} == {
        "/hub/metrics",
        "/services/jobs-gateway/metrics",
        "/services/culler/metrics",
    }
    for endpoint in endpoints:
        credentials = endpoint["authorization"]["credentials"]
        assert credentials == {"name": "hub", "key": "hub.services.prometheus.apiToken"}


def test_the_prometheus_service_holds_read_metrics_and_nothing_else() -> None:
    values = yaml.safe_load((MONITORING / "values-prometheus.yaml").read_text())
    assert "prometheus" in values["hub"]["services"]
    role = values["hub"]["loadRoles"]["prometheus"]
    assert role["scopes"] == ["read:metrics"] and role["services"] == ["prometheus"]


def test_the_plain_scrape_config_reads_all_three() -> None:
    config = yaml.safe_load((MONITORING / "prometheus-scrape.yaml").read_text())
    paths = {job["metrics_path"] for job in config["scrape_configs"]}
    assert paths == {"/hub/metrics", "/services/jobs-gateway/metrics", "/services/culler/metrics"}
    assert all(job["authorization"]["credentials_file"] for job in config["scrape_configs"])


def test_the_network_policy_is_a_valid_kubernetes_object() -> None:
    from tests.ship.k8s_schema import validate_object

    validate_object(yaml.safe_load((MONITORING / "networkpolicy-prometheus.yaml").read_text()))
