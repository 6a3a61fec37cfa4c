"""The Grafana dashboard queries only what the service exports.

Every PromQL expression in deploy/grafana/imagegate.json is taken apart: each
metric it names (``_bucket``/``_sum``/``_count`` stripped) must be one the metrics
module registers, each label it filters or groups by must be one of that metric's
labels, and each ``{{label}}`` of a legend must survive the aggregation. The names
come from the module's registry, not from a list in this test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate_server.metrics import Metrics, exported_labels, exported_names

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "imagegate.json"
REGISTRY = Metrics().registry
EXPORTED = exported_names(REGISTRY)
LABELS = exported_labels(REGISTRY)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![0-9A-Za-z_.:])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
             "and", "or", "unless", "inf", "nan"}  # fmt: skip
_LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def _targets(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)


def _metric(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in EXPORTED:
            return name.removesuffix(suffix)
    return name


def parse(expr: str) -> tuple[set[str], set[str], set[str]]:
    """(metric names, label names in matchers, label names in by/without)."""
    text = _STRING.sub('""', expr)
    matched: set[str] = set()
    for _, matchers in _SELECTOR.findall(text):
        matched.update(_MATCHER.findall(matchers))
    grouped = {label.strip() for group in _GROUPING.findall(text) for label in group.split(",")}
    grouped.discard("")
    bare = _RANGE.sub(" ", _GROUPING.sub(" ", re.sub(r"\{[^}]*\}", " ", text)))
    metrics = set()
    for match in _IDENT.finditer(bare):
        name = match.group()
        after = bare[match.end() :].lstrip()
        if name.lower() in _KEYWORDS or after.startswith("(") or name.startswith("$"):
            continue
        metrics.add(_metric(name))
    return metrics, matched, grouped


TARGETS = list(_targets(json.loads(DASHBOARD.read_text())))


def test_the_parser_finds_what_it_must() -> None:
    metrics, matched, grouped = parse(
        "histogram_quantile(0.9, sum by (le, model) (rate(imagegate_upstream_seconds_bucket"
        '{model!="a{b}"}[$__rate_interval]))) / on (x) other_total offset 5m'
    )
    assert metrics == {"imagegate_upstream_seconds", "other_total"}
    assert matched == {"model"} and grouped == {"le", "model", "x"}


def test_the_dashboard_has_the_panels_operators_need() -> None:
    queried = set().union(*(parse(t["expr"])[0] for t in TARGETS))
    assert {
        "grpc_server_handled_total",  # calls and errors by code
        "grpc_server_handling_seconds",  # latency percentiles
        "imagegate_upstream_seconds",
        "imagegate_upstream_retries_total",
        "imagegate_images_total",
        "imagegate_spend_usd_total",
        "imagegate_inflight_calls",
        "imagegate_limit_refusals_total",
        "imagegate_upstream_up",
        "imagegate_limiter_up",
        "imagegate_limiter_state",  # refusing or unreachable
    } <= queried


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t["expr"][:60])
def test_every_query_names_exported_metrics_and_their_labels(target: dict[str, Any]) -> None:
    metrics, matched, grouped = parse(target["expr"])
    assert metrics, "no metric found in the expression"
    assert metrics <= EXPORTED, metrics - EXPORTED
    for metric in metrics:
        assert matched | grouped <= LABELS[metric], (metric, (matched | grouped) - LABELS[metric])
    legend = set(_LEGEND.findall(target.get("legendFormat", "")))
    assert legend <= grouped, f"legend labels {legend - grouped} are aggregated away"
