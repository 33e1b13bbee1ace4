"""The Helm chart renders, lints and validates against the Kubernetes schemas for each option
combination, and its values schema rejects bad values — with no cluster and no helm binary
(the Helm v4 SDK from PyPI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helm_python import Chart, lint
from helm_python.errors import HelmError

CHART = Path(__file__).parents[2] / "deploy" / "helm" / "ccgate"
KUBE_VERSION = "1.31.0"
KEYS = {"secrets": {"apiKeys": "ana:sk-test"}}

COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "sidecar": {"ollama": {"enabled": True, "cache": {"persistent": True}}},
    "external-redis": {"redis": {"enabled": False, "url": "redis://redis.infra:6379/0"}},
    "redis-secret": {"redis": {"enabled": False, "existingSecret": "redis-conn"}},
    "redis-persistent": {"redis": {"persistence": {"enabled": True}}},
    "redis-cluster": {
        "redis": {
            "enabled": False,
            "mode": "cluster",
            "url": "rediss://clustercfg.team.cache.example:6379",
            "botUrl": "redis://bot-redis.infra:6379/0",
        },
        "bot": {"enabled": True, "allowedTelegramUserIds": "42"},
    },
    "redis-sentinel": {
        "redis": {
            "enabled": False,
            "mode": "sentinel",
            "url": "redis+sentinel://s1.infra:26379,s2.infra:26379,s3.infra:26379/ccgate",
        },
        "bot": {"enabled": True, "allowedTelegramUserIds": "42"},
    },
    "bot": {"bot": {"enabled": True, "allowedTelegramUserIds": "42"}},
    "ingress": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "t", "hosts": ["ccgate.example.com"]}],
        }
    },
    "everything": {
        "ollama": {"enabled": True},
        "bot": {"enabled": True},
        "ingress": {"enabled": True},
        "autoscaling": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "service": {"type": "LoadBalancer"},
        "otel": {"endpoint": "http://otel:4318"},
        "secrets": {"providerKeys": {"NVIDIA_NIM_API_KEY": "nvapi-x"}, "apiKeys": "a:b"},
        "routing": {"modelOpus": "nvidia_nim/qwen/qwen3-coder,openrouter/qwen/qwen3-coder:free"},
    },
}


def merged(values: dict[str, Any]) -> dict[str, Any]:
    def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = dict(a)
        for key, value in b.items():
            out[key] = (
                merge(out[key], value)
                if isinstance(value, dict) and isinstance(out.get(key), dict)
                else value
            )
        return out

    return merge(KEYS, values)


def manifests(values: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = Chart.load(CHART).render(values, name="team", namespace="tools", is_install=True)
    docs = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@pytest.mark.parametrize("name", COMBINATIONS)
def test_chart_renders_lints_and_validates(name: str) -> None:
    values = merged(COMBINATIONS[name])
    report = lint(CHART, values, strict=True, kube_version=KUBE_VERSION)
    problems = [
        m for m in report.get("messages", []) if int(m.get("severity", 0)) >= 2
    ]  # warnings, errors
    assert not problems, problems
    docs = manifests(values)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            continue  # a CRD: not in the core schemas
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    edge = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-edge")
    )
    pod = edge["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == [
            "ALL"
        ]
    names = [c["name"] for c in pod["containers"]]
    assert ("ollama" in names) == bool(values.get("ollama", {}).get("enabled"))


def test_options_change_what_is_rendered() -> None:
    by_kind = lambda docs: {(d["kind"], d["metadata"]["name"]) for d in docs}  # noqa: E731
    default = by_kind(manifests(merged({})))
    assert ("StatefulSet", "team-ccgate-redis") in default
    assert not any(kind == "Ingress" for kind, _ in default)
    external = manifests(merged(COMBINATIONS["external-redis"]))
    assert not any(d["kind"] == "StatefulSet" for d in external)
    edge = next(d for d in external if d["metadata"]["name"] == "team-ccgate-edge")
    env = {
        e["name"]: e.get("value") for e in edge["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["REDIS_URL"] == "redis://redis.infra:6379/0"
    for name, mode, bot_url in (
        ("defaults", "standalone", None),
        ("redis-cluster", "cluster", "redis://bot-redis.infra:6379/0"),
        ("redis-sentinel", "sentinel", None),
    ):
        for doc in manifests(merged(COMBINATIONS[name])):
            if doc["kind"] != "Deployment":
                continue
            env = {
                e["name"]: e.get("value")
                for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]
            }
            assert (env["REDIS_MODE"], env.get("BOT_REDIS_URL")) == (mode, bot_url), doc["metadata"]
    bot = by_kind(manifests(merged(COMBINATIONS["bot"])))
    assert {
        ("Deployment", "team-ccgate-worker"),
        ("Deployment", "team-ccgate-bot"),
        ("PersistentVolumeClaim", "team-ccgate-workspaces"),
    } <= bot
    sidecar = manifests(merged(COMBINATIONS["sidecar"]))
    config = next(d for d in sidecar if d["kind"] == "ConfigMap")
    assert config["data"]["OLLAMA_BASE_URL"] == "http://127.0.0.1:11434"
    edge = next(d for d in sidecar if d["metadata"]["name"] == "team-ccgate-edge")
    assert edge["spec"]["template"]["spec"]["initContainers"][0]["name"] == "ollama-pull"


def test_secrets_come_from_a_secret_not_the_configmap() -> None:
    docs = manifests(merged(COMBINATIONS["everything"]))
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert "nvapi-x" not in yaml.safe_dump(config)
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["stringData"]["NVIDIA_NIM_API_KEY"] == "nvapi-x"
    existing = manifests(merged({"secrets": {"existingSecret": "team-keys"}}))
    assert not any(d["kind"] == "Secret" for d in existing)
    edge = next(d for d in existing if d["metadata"]["name"] == "team-ccgate-edge")
    refs = edge["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": "team-keys", "optional": True}} in refs


def test_bot_and_worker_have_a_liveness_probe_on_their_heartbeat() -> None:
    docs = manifests(merged({"bot": {"enabled": True, "livenessProbe": {"periodSeconds": 7}}}))
    for role in ("bot", "worker"):
        deployment = next(d for d in docs if d["metadata"]["name"] == f"team-ccgate-{role}")
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
        assert probe["exec"]["command"] == ["python", "-m", "ccgate.bot.heartbeat", role]
        assert probe["periodSeconds"] == 7


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"bot": {"livenessProbe": {"periodSeconds": 0}}}, "periodSeconds"),
        ({"edge": {"replicaCount": 0}}, "replicaCount"),
        ({"limits": {"failureMode": "sometimes"}}, "failureMode"),
        ({"routing": {"model": "no-provider-here"}}, "model"),
        ({"redis": {"enabled": False}}, "redis"),
        ({"redis": {"mode": "cluster"}}, "mode"),  # the bundled Redis is one instance
        ({"redis": {"enabled": False, "mode": "replicas", "url": "redis://r:6379"}}, "mode"),
        ({"redis": {"enabled": False, "mode": "sentinel", "url": "redis://r:6379"}}, "url"),
        (
            {
                "redis": {"enabled": False, "mode": "cluster", "url": "redis://r:6379"},
                "bot": {"enabled": True},
            },
            "botUrl",
        ),
        ({"otel": {"endpoint": "otel:4318"}}, "endpoint"),
        ({"secrets": {"providerKeys": {"nvidia": "x"}}}, "_API_KEY"),
        ({"service": {"type": "Magic"}}, "type"),
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any], needle: str) -> None:
    chart = Chart.load(CHART)
    with pytest.raises(HelmError) as info:
        chart.validate_schema(chart.merge_values(merged(values)))
    assert needle in str(info.value)
