"""What an answer contains: the job's images, the ImagesResponse JSON, the SSE events.

Everything here is pure (bytes and dicts in, bytes and dicts out); when and how the
answer is written, with its faults, is the pipeline's and the responder's job. The
shapes follow OpenAI's spec: ``ImagesResponse`` (``created``, ``data``, and for GPT
image models the echoed ``background``/``output_format``/``quality``/``size`` and
``usage``), ``image_generation.partial_image`` / ``.completed`` events (``image_edit.*``
for edits), each framed as ``event:`` and ``data:`` lines.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from imagegate_server.emulator.jobs import Job
from imagegate_server.emulator.render import RenderSpec
from imagegate_server.emulator.renderer import Renderer
from imagegate_server.emulator.usage import usage
from imagegate_server.models import Operation


def render_spec(job: Job, index: int) -> RenderSpec:
    """What the renderer needs to make image ``index`` of ``job``."""
    return RenderSpec(
        prompt=job.identity_prompt,
        model=job.model,
        width=job.width,
        height=job.height,
        index=index,
        output_format=job.output_format,
        transparent=job.transparent,
        compression=job.compression,
        frame_count=job.frame_count,
        frame_duration_ms=job.frame_duration_ms,
        quality=job.quality,
    )


def render_image(renderer: Renderer, job: Job, index: int) -> bytes:
    """Image ``index`` of ``job``, encoded (CPU-bound: run it in the render pool)."""
    spec = render_spec(job, index)
    if job.operation is Operation.GENERATION:
        return renderer.generate(spec)
    if job.operation is Operation.EDIT:
        return renderer.edit(spec, job.pictures[0], job.mask_picture, job.markup_picture)
    return renderer.variation(spec, job.pictures[0])


def job_usage(job: Job) -> dict[str, Any]:
    """The token usage of the whole request (all ``n`` images)."""
    inputs = [(u.info.width or 0, u.info.height or 0) for u in job.images if u.info]
    return usage(
        job.model, job.prompt, inputs, job.quality, job.width, job.height, job.n, job.partial_images
    )


def image_usage(job: Job) -> dict[str, Any]:
    """The usage a completed event carries: that of generating one of the images
    (the request's input tokens, one image's output tokens and partial images)."""
    return job_usage(job if job.n == 1 else replace(job, n=1))


def images_response(
    job: Job, images: list[bytes], url_for: Callable[[bytes], str]
) -> dict[str, Any]:
    """The ImagesResponse of a unary answer; ``url_for`` stores an image for
    ``response_format=url`` and returns its address."""
    data: list[dict[str, Any]] = []
    for image in images:
        if job.response_format == "url":
            item: dict[str, Any] = {"url": url_for(image)}
        else:
            item = {"b64_json": base64.b64encode(image).decode()}
        if job.model == "dall-e-3":
            item["revised_prompt"] = f"{job.prompt.strip()}, rendered in a {job.style} style."
        data.append(item)
    payload: dict[str, Any] = {"created": int(time.time()), "data": data}
    if job.rules.gpt_image:
        payload.update(_echo(job), usage=job_usage(job))
    return payload


def partial_event(job: Job, preview: bytes, step: int) -> dict[str, Any]:
    return {
        "type": f"{_event_prefix(job)}.partial_image",
        "b64_json": base64.b64encode(preview).decode(),
        "created_at": int(time.time()),
        "partial_image_index": step,
        **_echo(job),
    }


def completed_event(job: Job, final: bytes) -> dict[str, Any]:
    """A final image; like OpenAI's, it carries no image index."""
    return {
        "type": f"{_event_prefix(job)}.completed",
        "b64_json": base64.b64encode(final).decode(),
        "created_at": int(time.time()),
        **_echo(job),
        "usage": image_usage(job),
    }


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event, named after its ``type``."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _event_prefix(job: Job) -> str:
    return "image_generation" if job.operation is Operation.GENERATION else "image_edit"


def _echo(job: Job) -> dict[str, Any]:
    """The settings GPT image models echo (answers and events, in OpenAI's order)."""
    return {
        "background": "transparent" if job.transparent else "opaque",
        "output_format": job.output_format,
        "quality": job.quality,
        "size": job.size,
    }
