"""The metrics module: names and labels dashboards rely on, and bounded label values."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import generate_latest

from imagegate_server.metrics import LONG_BUCKETS, Metrics, exported_names
from imagegate_server.metrics.limits import LIMITER_STATES
from imagegate_server.models import MODEL_RULES

KNOWN_MODEL = next(iter(MODEL_RULES))


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    found: float | None = metrics.registry.get_sample_value(name, labels)
    return found


def series(metrics: Metrics, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


def test_every_metric_the_dashboards_use_is_exported() -> None:
    names = exported_names(Metrics().registry)
    assert {
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
        "imagegate_upstream_requests_total",
        "imagegate_upstream_seconds",
        "imagegate_upstream_retries_total",
        "imagegate_images_total",
        "imagegate_partial_images_total",
        "imagegate_upload_bytes_total",
        "imagegate_result_bytes_total",
        "imagegate_inflight_calls",
        "imagegate_upload_spooled_bytes_total",
        "imagegate_limit_refusals_total",
        "imagegate_spend_usd_total",
        "imagegate_upstream_up",
        "imagegate_limiter_up",
        "imagegate_limiter_state",
    } <= names


@pytest.mark.parametrize(
    ("method", "grpc_type"),
    [
        ("CreateImage", "unary"),
        ("CreateImageStream", "server_stream"),
        ("CreateImageEdit", "client_stream"),
        ("CreateImageEditStream", "bidi_stream"),
        ("CreateImageVariation", "client_stream"),
    ],
)
def test_rpc_metrics_carry_the_grpc_ecosystem_labels(method: str, grpc_type: str) -> None:
    metrics = Metrics()
    rpc = metrics.rpc(method)
    rpc.started()
    rpc.received(3)
    rpc.sent(2)
    rpc.handled(grpc.StatusCode.INVALID_ARGUMENT, 0.2)
    rpc.handled("OK", 125.0)
    ids = {"grpc_service": "imagegate.v1.ImagesService", "grpc_method": method}
    labels = dict(ids, grpc_type=grpc_type)
    assert value(metrics, "grpc_server_started_total", **labels) == 1
    assert value(metrics, "grpc_server_msg_received_total", **labels) == 3
    assert value(metrics, "grpc_server_msg_sent_total", **labels) == 2
    handled = "grpc_server_handled_total"
    assert value(metrics, handled, **labels, grpc_code="INVALID_ARGUMENT") == 1
    assert value(metrics, handled, **labels, grpc_code="OK") == 1
    assert value(metrics, "grpc_server_handling_seconds_count", **labels) == 2
    assert value(metrics, "grpc_server_handling_seconds_bucket", **labels, le="120.0") == 1
    assert value(metrics, "grpc_server_handling_seconds_bucket", **labels, le="180.0") == 2


def test_the_edge_gets_one_cached_object_per_method() -> None:
    metrics = Metrics()
    assert metrics.rpc("CreateImage") is metrics.rpc("CreateImage")
    with pytest.raises(KeyError):
        metrics.rpc("NoSuchMethod")


def test_unknown_grpc_codes_are_unknown() -> None:
    metrics = Metrics()
    metrics.rpc("CreateImage").handled("not a code", 1.0)
    assert {s["grpc_code"] for s in series(metrics, "grpc_server_handled_total")} == {"UNKNOWN"}


def test_latency_buckets_reach_past_image_call_durations() -> None:
    assert 300.0 in LONG_BUCKETS and 600.0 in LONG_BUCKETS
    metrics = Metrics()
    metrics.upstream_request("default", KNOWN_MODEL, 200, 400.0)
    assert (
        value(
            metrics,
            "imagegate_upstream_seconds_bucket",
            upstream="default",
            model=KNOWN_MODEL,
            le="300.0",
        )
        == 0
    )
    assert (
        value(
            metrics,
            "imagegate_upstream_seconds_bucket",
            upstream="default",
            model=KNOWN_MODEL,
            le="450.0",
        )
        == 1
    )


def test_a_model_the_table_does_not_know_is_other() -> None:
    metrics = Metrics()
    for name in ("x" * 300, "gpt-image-99-from-a-caller", ""):
        metrics.upstream_request("default", name, 200, 1.0)
        metrics.images(name, "generation", 2)
        metrics.spend("c", name, 10, "default")
    metrics.images(KNOWN_MODEL, "generation")
    assert (
        value(
            metrics,
            "imagegate_upstream_requests_total",
            upstream="default",
            model="other",
            status="200",
        )
        == 3
    )
    assert value(metrics, "imagegate_images_total", model="other", operation="generation") == 6
    assert value(metrics, "imagegate_images_total", model=KNOWN_MODEL, operation="generation") == 1
    models = {s["model"] for s in series(metrics, "imagegate_images_total")}
    assert models == {"other", KNOWN_MODEL}


def test_client_labels_come_only_from_the_clients_file() -> None:
    metrics = Metrics()
    metrics.limit_refused("images_per_minute", "team-a")  # before the file is loaded
    metrics.known_clients(["team-a", "team-b"])
    metrics.limit_refused("images_per_minute", "team-a")
    metrics.limit_refused("images_per_minute", "someone-else")
    metrics.limit_refused("requests_per_minute", None)
    got = {(s["limit"], s["client"]) for s in series(metrics, "imagegate_limit_refusals_total")}
    assert got == {
        ("images_per_minute", "other"),
        ("images_per_minute", "team-a"),
        ("requests_per_minute", "anonymous"),
    }
    assert (
        value(metrics, "imagegate_limit_refusals_total", limit="images_per_minute", client="other")
        == 2
    )


def test_other_labels_are_closed_sets() -> None:
    metrics = Metrics()
    metrics.images(KNOWN_MODEL, "a prompt: draw my cat", 1)
    metrics.upstream_request("default", KNOWN_MODEL, "connection refused by 10.0.0.1", 0.1)
    metrics.upstream_request("default", KNOWN_MODEL, 999, 0.1)
    metrics.upstream_retry("default", "because I said so")
    metrics.limit_refused("Budget Exceeded: $12 of $10", None)
    assert {s["operation"] for s in series(metrics, "imagegate_images_total")} == {"other"}
    statuses = {s["status"] for s in series(metrics, "imagegate_upstream_requests_total")}
    assert statuses == {"other"}
    assert {s["cause"] for s in series(metrics, "imagegate_upstream_retries_total")} == {"other"}
    assert {s["limit"] for s in series(metrics, "imagegate_limit_refusals_total")} == {"other"}


def test_no_free_text_or_secret_reaches_the_exposition() -> None:
    metrics = Metrics()
    secret = "sk-live-SECRETKEY-0123456789"
    prompt = "a photo of my neighbour's address"
    metrics.known_clients(["team-a"])
    metrics.images(prompt, prompt, 1)
    metrics.spend(secret, secret, 5, secret)
    metrics.limit_refused(prompt, secret)
    with metrics.in_flight(f"Bearer {secret}"):
        pass
    text = generate_latest(metrics.registry).decode()
    assert secret not in text and prompt not in text and "neighbour" not in text


def test_spend_is_recorded_in_dollars_from_micro_dollars() -> None:
    metrics = Metrics()
    metrics.known_clients(["team-a"])
    metrics.spend("team-a", KNOWN_MODEL, 1_234_567, "default")
    metrics.spend("team-a", KNOWN_MODEL, 433, "default")
    metrics.spend("team-a", KNOWN_MODEL, 0, "default")
    spent = value(
        metrics, "imagegate_spend_usd_total", client="team-a", model=KNOWN_MODEL, upstream="default"
    )
    assert spent == pytest.approx(1.235, abs=1e-9)


def test_in_flight_calls_go_back_down_however_the_call_ends() -> None:
    metrics = Metrics()
    gauge = "imagegate_inflight_calls"
    with metrics.in_flight(None), metrics.in_flight(None):
        assert value(metrics, gauge, client="anonymous") == 2
    with pytest.raises(RuntimeError), metrics.in_flight(None):
        raise RuntimeError("the call failed")
    assert value(metrics, gauge, client="anonymous") == 0


def test_upstream_up_follows_what_the_upstream_answered() -> None:
    metrics = Metrics()
    metrics.upstream_request("default", KNOWN_MODEL, "connect_error", 0.1)
    assert value(metrics, "imagegate_upstream_up", upstream="default") == 0
    metrics.upstream_request(
        "default", KNOWN_MODEL, "timeout", 300.0
    )  # says nothing about reachability
    assert value(metrics, "imagegate_upstream_up", upstream="default") == 0
    metrics.upstream_request(
        "default", KNOWN_MODEL, 503, 0.1
    )  # an answer, even an error, means reachable
    assert value(metrics, "imagegate_upstream_up", upstream="default") == 1


def test_the_limiter_state_tells_refusing_from_unreachable_and_up_means_both_fine() -> None:
    metrics = Metrics()

    def states() -> dict[str, float | None]:
        return {s: value(metrics, "imagegate_limiter_state", state=s) for s in LIMITER_STATES}

    assert value(metrics, "imagegate_limiter_up") == 1
    assert states() == {"up": 1, "refusing": 0, "unreachable": 0}
    metrics.set_limiter_state("refusing")  # it answers, with errors (WRONGPASS, OOM...)
    assert value(metrics, "imagegate_limiter_up") == 0
    assert states() == {"up": 0, "refusing": 1, "unreachable": 0}
    metrics.set_limiter_state("unreachable")
    assert value(metrics, "imagegate_limiter_up") == 0
    assert states() == {"up": 0, "refusing": 0, "unreachable": 1}
    metrics.set_limiter_state("up")
    assert value(metrics, "imagegate_limiter_up") == 1
    assert states() == {"up": 1, "refusing": 0, "unreachable": 0}


def test_counts_that_are_not_positive_record_nothing_and_never_raise() -> None:
    metrics = Metrics()
    metrics.images(KNOWN_MODEL, "edit", 0)
    metrics.upload_bytes("edit", -5)
    metrics.result_bytes("edit", 0)
    metrics.upload_spooled(-1)
    metrics.spend(None, KNOWN_MODEL, -10, "default")
    metrics.rpc("CreateImage").handled("OK", -1.0)
    assert series(metrics, "imagegate_images_total") == []
    assert value(metrics, "imagegate_upload_spooled_bytes_total") == 0
    assert (
        value(
            metrics,
            "grpc_server_handling_seconds_bucket",
            grpc_service="imagegate.v1.ImagesService",
            grpc_method="CreateImage",
            grpc_type="unary",
            le="0.005",
        )
        == 1
    )


def test_upstream_labels_are_the_upstreams_files_names_else_other() -> None:
    metrics = Metrics()
    metrics.upstream_request("team-a", KNOWN_MODEL, 200, 0.1)  # before the file is loaded
    metrics.known_upstreams(["team-a", "azure-eu"])
    metrics.upstream_request("team-a", KNOWN_MODEL, 200, 0.1)
    metrics.upstream_request("https://attacker.example/sk-abc", KNOWN_MODEL, 200, 0.1)
    metrics.spend("c", KNOWN_MODEL, 10, "azure-eu")
    metrics.spend("c", KNOWN_MODEL, 10, None)  # reached no upstream
    metrics.upstream_failover("team-a", "a reason nobody listed")
    got = {s["upstream"] for s in series(metrics, "imagegate_upstream_requests_total")}
    assert got == {"team-a", "other"}
    assert {s["upstream"] for s in series(metrics, "imagegate_spend_usd_total")} == {
        "azure-eu",
        "other",
    }
    assert {s["cause"] for s in series(metrics, "imagegate_upstream_failovers_total")} == {"other"}
