"""No value in an answer can raise anything but a classified upstream error.

An answer, whole or streamed, goes through the decoder (``decoding``, ``sse``,
``events``), the mapping into the contract's result and the cost arithmetic (the
usage judged, then priced): fed arbitrary JSON values in every field (huge and
negative integers, floats, strings, nesting), each step either takes the answer or
raises :class:`UpstreamProtocolError` (UNAVAILABLE for the caller). Before, 1e18
tokens raised ValueError (INTERNAL) after the image was made.

When it takes the answer, the result serializes, and the charge is an integer of
micro-dollars a budget can hold: the reported usage's cost when the usage is
trusted (never beyond what the call could have produced), else at most the call's
estimate, and never 0 for a model priced by tokens.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagegate.v1 import results_pb2

from imagegate_server.errors import UpstreamError, UpstreamProtocolError
from imagegate_server.gateway.mapping.cost import Pricer
from imagegate_server.gateway.mapping.events import stream_items
from imagegate_server.gateway.mapping.results import Finished, images_result
from imagegate_server.pricing import load_prices
from imagegate_server.upstream import ImageEvents, ImagesAnswer
from imagegate_server.upstream.bounds import answer_bounds
from imagegate_server.upstream.decoding import AnswerReader, aligned_images
from imagegate_server.upstream.errors import ErrorDecoder
from imagegate_server.upstream.events import image_events

PRICES = load_prices()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40)).decode()
MODELS = ["gpt-image-2", "gpt-image-1", "gpt-image-1-mini", "dall-e-3", "dall-e-2", "new-model"]
INT64_MAX = 2**63 - 1


class Anomalies:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def usage_anomaly(self, kind: str) -> None:
        self.kinds.append(kind)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
# Mostly what OpenAI sends, often something else: every kind of value in every place.
plausible = st.integers(min_value=0, max_value=20_000)
counts = st.one_of(
    plausible,
    plausible,
    st.sampled_from([-1, 10**12, 10**12 + 1, 10**15, 10**18, 10**20, 1e18, 2**64, 2**63]),
    json_values,
)
details = st.fixed_dictionaries({}, optional={"text_tokens": counts, "image_tokens": counts})
usages = st.one_of(
    st.fixed_dictionaries(
        {"input_tokens": counts, "output_tokens": counts},
        optional={
            "total_tokens": counts,
            "input_tokens_details": details | json_values,
            "output_tokens_details": details | json_values,
        },
    ),
    json_values,
)
images = st.one_of(st.just(PNG), st.just(PNG), st.sampled_from(["AAAA", "", "!!"]), json_values)
items = st.fixed_dictionaries(
    {"b64_json": images}, optional={"url": json_values, "revised_prompt": json_values}
) | st.fixed_dictionaries({}, optional={"url": json_values, "b64_json": json_values})
echoed = {
    "created": counts,
    "created_at": counts,
    "size": st.sampled_from(["1024x1024", "999999x999999", "0x0", "auto"]) | json_values,
    "quality": st.sampled_from(["low", "high", "max", "ultra"]) | json_values,
    "output_format": st.sampled_from(["png", "gif"]) | json_values,
    "background": json_values,
    "svg_usage": st.fixed_dictionaries({}, optional={"input_tokens": counts, "model": json_values})
    | json_values,
    "partial_image_index": counts,
}
answers = st.fixed_dictionaries(
    {"data": st.lists(items, min_size=1, max_size=3) | json_values, "usage": usages},
    optional=echoed,
) | st.fixed_dictionaries({}, optional={"data": json_values, "usage": usages, **echoed})
event_kinds = st.sampled_from(
    [
        "image_generation.completed",
        "image_generation.partial_image",
        "image_edit.completed",
        "error",
        "x",
    ]
)
streamed_events = st.builds(
    lambda kind, image, fields: {"type": kind, "b64_json": image, **fields},
    event_kinds,
    images,
    st.fixed_dictionaries({"usage": usages}, optional=echoed),
)


def _params(model: str, n: int, stream: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model, "prompt": "a lighthouse", "n": n, "size": "1024x1024"}
    return {**params, "partial_images": 2} if stream else params


def _estimate(params: dict[str, Any]) -> int:
    estimate = PRICES.estimate_micros(
        params["model"], quality=None, size=params["size"], n=params["n"], prompt_chars=12
    )
    return estimate or 0


def _check_charge(finished: Finished, cost: int | None, params: dict[str, Any]) -> None:
    result = finished.result
    assert len(result.SerializeToString()) > 0 or not result.images
    if cost is None:
        assert result.cost.basis == results_pb2.COST_BASIS_UNPRICED
        return
    assert isinstance(cost, int) and 0 <= cost <= INT64_MAX
    assert result.cost.usd_micros == cost
    if result.cost.basis == results_pb2.COST_BASIS_ESTIMATE:
        assert 0 < cost <= _estimate(params)  # never 0, never above the reservation
    if result.cost.basis == results_pb2.COST_BASIS_USAGE:
        assert result.HasField("usage")
        assert cost <= 1_000 * _estimate(params)  # within the call's ceiling, not $1e10


@settings(max_examples=400, deadline=None)
@given(document=answers, model=st.sampled_from(MODELS), n=st.integers(1, 3))
def test_any_whole_answer_is_taken_or_refused_as_a_protocol_error(
    document: dict[str, Any], model: str, n: int
) -> None:
    params = _params(model, n, stream=False)
    bounds = answer_bounds(params, stream=False, unknown_model_bytes=1024 * 1024)
    anomalies = Anomalies()
    pricer = Pricer(lambda _: PRICES, PRICES, anomalies)
    body = json.dumps(document).encode()
    try:
        reader = AnswerReader("req_1", bounds.images)
        for start in range(0, len(body), 37):
            reader.feed(body[start : start + 37])
        payload, decoded = reader.finish()
        answer = ImagesAnswer(payload, aligned_images(payload, decoded, "req_1", n), "req_1")
        finished = images_result(answer)
        cost = pricer.price(finished, params, input_images=0, estimate_micros=_estimate(params))
    except UpstreamProtocolError as error:
        assert error.may_have_billed and error.request_id == "req_1"
        return
    _check_charge(finished, cost, params)


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 53):
        yield body[start : start + 53]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents=st.lists(streamed_events | answers, max_size=4),
    model=st.sampled_from(MODELS[:3] + MODELS[-1:]),
    n=st.integers(1, 2),
)
async def test_any_stream_is_taken_or_refused_as_a_protocol_error(
    documents: list[dict[str, Any]], model: str, n: int
) -> None:
    params = _params(model, n, stream=True)
    bounds = answer_bounds(params, stream=True, unknown_model_bytes=1024 * 1024)
    pricer = Pricer(lambda _: PRICES, PRICES, Anomalies())
    body = b"".join(
        f"event: {doc.get('type', 'x')}\ndata: {json.dumps(doc)}\n\n".encode() for doc in documents
    )
    events = image_events(_chunks(body), "req_1", ErrorDecoder(["sk-key"]), bounds)
    finished, cost = None, None
    try:
        async for item in stream_items(ImageEvents(events, "req_1"), 1024):
            if isinstance(item, Finished):
                finished = item
                cost = pricer.price(item, params, input_images=0, estimate_micros=_estimate(params))
    except (UpstreamProtocolError, UpstreamError):
        return  # refused, or an error event: both classified
    assert finished is not None
    _check_charge(finished, cost, params)
