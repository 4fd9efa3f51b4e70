"""Helpers of the monitoring tests: the deploy/ files, metric names in PromQL, the names /metrics serves, and
the Debian tools (promtool, prometheus) that .ci/run and `scripts/bootstrap.sh --test-tools` install."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ..conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
GRAFANA = ROOT / "deploy" / "grafana" / "position-order-service.json"

# series Prometheus makes itself, not the service
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                "unless", "inf", "nan"}  # fmt: skip


def require_tool(name: str) -> str:
    """The tool's path; a test without it fails in CI and is skipped elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y prometheus; .ci/run does it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, keywords, label names or durations)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[m.end() :].lstrip().startswith("(") or m.group(0).lower() in _NOT_METRICS:
            continue
        names.add(m.group(0))
    return names


def served_names(exposition: str) -> set[str]:
    """Every series name a scrape of this /metrics text can produce (a family with no sample yet included)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    out: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        out |= {family.name + s for s in suffixes.get(family.type, ("",))}
        out |= {s.name for s in family.samples}
    return out


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]
