"""What a registry exports, named as a query writes it, so that dashboards and alerts
can be checked against the metrics that exist.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry


def exported_names(registry: CollectorRegistry) -> frozenset[str]:
    """Metric names as a query writes them: counters with ``_total``, histograms by
    their base name (``_bucket``, ``_sum``, ``_count`` stripped), gauges as they are."""
    names: set[str] = set()
    for family in registry.collect():
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return frozenset(names)


def exported_labels(registry: CollectorRegistry) -> dict[str, frozenset[str]]:
    """The label names of each metric in :func:`exported_names`'s spelling (histograms
    also have ``le``), so a dashboard's ``by (...)`` can be checked against them."""
    names = {family.name: family.type for family in registry.collect()}
    labels: dict[str, frozenset[str]] = {}
    # prometheus-client has no public accessor for a metric's label names.
    for collector in list(registry._collector_to_names):
        family_name = getattr(collector, "_name", None)
        if family_name not in names:
            continue
        label_names = frozenset(getattr(collector, "_labelnames", ()))
        if names[family_name] == "counter":
            labels[f"{family_name}_total"] = label_names
        elif names[family_name] == "histogram":
            labels[family_name] = label_names | {"le"}
        else:
            labels[family_name] = label_names
    return labels
