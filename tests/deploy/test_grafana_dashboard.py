"""The Grafana dashboard: every query names a metric a live edge really exports (scraped from
its /metrics after real traffic), with the labels it groups by; the chart ships it as a
ConfigMap carrying the label Grafana's dashboard sidecar watches."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Edge
from tests.deploy.test_helm import KUBE_VERSION, manifests, merged
from tests.fakes.backend import FakeBackend, Turn

DASHBOARD = Path(__file__).parents[2] / "deploy" / "helm" / "ccgate" / "dashboards" / "ccgate.json"
METRIC = re.compile(r"\bccgate_[a-z0-9_]+")
GROUPED = re.compile(r"by \(([^)]*)\) \((?:rate|increase|)\(?(ccgate_[a-z0-9_]+)")


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def drive_traffic(edge: Edge, backend: FakeBackend) -> None:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-8",
        "max_tokens": 20,
        "stream": True,
        "messages": [
            {"role": "user", "content": "run it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_9",
                        "is_error": True,
                        "content": "x",
                    }
                ],
            },
        ],
    }
    backend.script(Turn(status=429, headers={"retry-after": "0"}), Turn(text="ok"))
    for _ in range(2):
        with httpx.stream("POST", edge.url + "/v1/messages", json=body, timeout=30) as response:
            assert response.status_code == 200
            response.read()


def test_every_dashboard_query_names_an_exported_metric(edge: Edge, backend: FakeBackend) -> None:
    drive_traffic(edge, backend)
    scrape = httpx.get(edge.url + "/metrics").text
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    exprs = queries()
    assert len(exprs) >= 15
    named = {name for expr in exprs for name in METRIC.findall(expr)}
    assert named, "no ccgate metric in the dashboard"
    missing = sorted(named - labels.keys())
    assert not missing, f"the dashboard queries metrics the edge does not export: {missing}"
    for expr in exprs:
        for group, name in GROUPED.findall(expr):
            wanted = {g.strip() for g in group.split(",")} - {"le"}
            assert wanted <= labels[name], f"{name} has no label(s) {wanted - labels[name]}"


def test_chart_ships_the_dashboard_for_the_grafana_sidecar() -> None:
    assert not any(d["metadata"]["name"].endswith("-dashboard") for d in manifests(merged({})))
    docs = manifests(merged({"grafanaDashboard": {"enabled": True, "folder": "LLM"}}))
    config = next(d for d in docs if d["metadata"]["name"] == "team-ccgate-dashboard")
    kubernetes_validate.validate(config, KUBE_VERSION, strict=True)
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"]["grafana_folder"] == "LLM"
    assert json.loads(config["data"]["ccgate.json"]) == json.loads(DASHBOARD.read_text())
    custom = manifests(
        merged({"grafanaDashboard": {"enabled": True, "label": "team_dash", "labelValue": "yes"}})
    )
    labels = next(d for d in custom if d["metadata"]["name"] == "team-ccgate-dashboard")[
        "metadata"
    ]["labels"]
    assert labels["team_dash"] == "yes"
