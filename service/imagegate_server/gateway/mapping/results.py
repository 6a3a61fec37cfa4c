"""OpenAI's ImagesResponse -> ImagesResult, and images -> slices.

The upstream hands over images already decoded from base64 (once, as they arrived);
here they go into the result, or into slices for the stream RPCs. Numbers from the
answer are copied only when the contract's field can hold them (no value an
upstream sends can fail the mapping); its ``usage`` is handed on unjudged
(:class:`Finished`), for :mod:`.usage` to judge before the call is charged by it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from imagegate.v1 import params_pb2, results_pb2

from imagegate_server.errors import AnswerFault, UpstreamProtocolError
from imagegate_server.gateway.contract import enum_number
from imagegate_server.upstream import ImagesAnswer

_UINT32_MAX = 2**32 - 1
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class Finished:
    """A call's result (its images' bytes not in it) and the ``usage`` its answer
    reported, as sent: one per completed event of a stream, None where there was none."""

    result: results_pb2.ImagesResult
    usage_reports: tuple[object, ...]


def apply_metadata(result: results_pb2.ImagesResult, payload: Mapping[str, Any]) -> None:
    """Copy the echoed settings (and ``svg_usage``) of an ImagesResponse or a
    completed event; its ``usage`` is judged apart (:mod:`.usage`)."""
    for name, enum in (
        ("background", params_pb2.Background.DESCRIPTOR),
        ("output_format", params_pb2.OutputFormat.DESCRIPTOR),
        ("quality", params_pb2.Quality.DESCRIPTOR),
    ):
        # Values newer than the contract map to UNSPECIFIED rather than failing.
        setattr(result, name, enum_number(enum, payload.get(name)))
    for name in ("size", "safety_identifier"):
        value = payload.get(name)
        if isinstance(value, str):
            setattr(result, name, value)
    svg_usage = payload.get("svg_usage")
    if isinstance(svg_usage, dict):
        fields = ("input_tokens", "output_tokens", "reasoning_tokens", "total_tokens")
        _copy_ints(result.svg_usage, svg_usage, fields)
        if isinstance(svg_usage.get("model"), str):
            result.svg_usage.model = svg_usage["model"]


def _copy_ints(target: Any, source: Mapping[str, Any], names: tuple[str, ...]) -> None:
    target.SetInParent()  # present even when every count is zero
    for name in names:
        value = whole(source.get(name), _UINT64_MAX)
        if value is not None:
            setattr(target, name, value)


def whole(value: object, maximum: int) -> int | None:
    """``value`` when it is an integer from 0 to ``maximum``, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum:
        return value
    return None


def set_created(result: results_pb2.ImagesResult, created: object) -> None:
    """``created`` (Unix seconds) when it is one, and the result has none yet."""
    seconds = whole(created, _INT64_MAX)
    if seconds is not None and not result.created:
        result.created = seconds


def partial_index(value: object) -> int:
    """A partial image's ``partial_image_index``, 0 when it is none the contract holds."""
    return whole(value, _UINT32_MAX) or 0


def images_result(answer: ImagesAnswer) -> Finished:
    """The result of an ImagesResponse, its images' bytes not yet in it: a unary
    response joins them in (:mod:`.serialized`), a stream slices them."""
    payload, request_id = answer.payload, answer.request_id
    result = results_pb2.ImagesResult(upstream=answer.upstream)
    set_created(result, payload.get("created"))
    apply_metadata(result, payload)
    data = payload.get("data")
    for item, decoded in zip(data if isinstance(data, list) else [], answer.images, strict=True):
        if not isinstance(item, dict):
            raise UpstreamProtocolError("the upstream sent a malformed image", request_id)
        image = result.images.add()
        if isinstance(item.get("revised_prompt"), str):
            image.revised_prompt = item["revised_prompt"]
        if decoded is None:
            if not isinstance(item.get("url"), str):
                raise UpstreamProtocolError(
                    "the upstream sent an image without data", request_id, AnswerFault.BAD_IMAGE
                )
            image.url = item["url"]
    return Finished(result, (payload.get("usage"),))


@dataclass(frozen=True, slots=True)
class ImageSlice:
    """One slice of an image for a stream RPC: its ImageChunk without the bytes, and
    the bytes, a view into the image (:mod:`.serialized` joins them into the message)."""

    head: results_pb2.ImageChunk
    data: memoryview


def slices(
    data: bytes,
    chunk_bytes: int,
    image_index: int,
    partial_image_index: int | None = None,
) -> Iterator[ImageSlice]:
    """An image as ordered slices of at most ``chunk_bytes``; the last one says so."""
    view = memoryview(data)
    for offset in range(0, max(len(data), 1), chunk_bytes):
        head = results_pb2.ImageChunk(
            image_index=image_index, offset=offset, last=offset + chunk_bytes >= len(data)
        )
        if partial_image_index is not None:
            head.partial_image_index = partial_image_index
        yield ImageSlice(head, view[offset : offset + chunk_bytes])
