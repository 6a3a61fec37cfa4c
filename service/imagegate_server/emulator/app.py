"""The emulator's HTTP routes: the three Images operations, image URLs, debug endpoints.

Per request: journal it, check the bearer key, read the body, apply faults, validate
(the shared validation module), wait the simulated latency, render in a thread pool,
answer as JSON or server-sent events, through a writer that can trickle or reset.
Errors never carry exception text: they are OpenAI-shaped, details go to the log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import secrets
import socket
import struct
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from imagegate_server.emulator.config import EmulatorConfig
from imagegate_server.emulator.errors import ApiError, bad_request, missing_api_key, wrong_api_key
from imagegate_server.emulator.faults import (
    FAULT_HEADER,
    FaultInjector,
    FaultPlan,
    FaultSyntaxError,
)
from imagegate_server.emulator.jobs import Job, build_job
from imagegate_server.emulator.journal import FileRecord, Journal, JournalEntry
from imagegate_server.emulator.parsing import read_body
from imagegate_server.emulator.render import Renderer, RenderSpec
from imagegate_server.emulator.urls import UrlStore
from imagegate_server.emulator.usage import usage
from imagegate_server.models import Operation

log = logging.getLogger("imagegate.emulator")

IMAGE_PATH = "/_emulator/images/"
_CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
# What the emulator claims as its rate limits (headers only; nothing is enforced).
_LIMIT_REQUESTS = 500
_LIMIT_TOKENS = 1_000_000


@dataclass
class EmulatorState:
    config: EmulatorConfig
    journal: Journal
    urls: UrlStore
    executor: ThreadPoolExecutor
    renderer: Renderer
    faults: FaultInjector = field(default_factory=FaultInjector)
    default_faults: str = ""
    in_flight: int = 0
    rng: random.Random = field(default_factory=random.Random)


STATE = web.AppKey("state", EmulatorState)


class _ConnectionAbortedError(Exception):
    """The injected reset was sent; nothing more can be written."""


class _Responder:
    """Sends the response through the request's fault plan (slow body, reset)."""

    def __init__(self, request: web.Request, entry: JournalEntry, request_id: str) -> None:
        self.request = request
        self.state = request.app[STATE]
        self.entry = entry
        self.request_id = request_id
        self.started = time.monotonic()
        self.plan = FaultPlan()
        self.sent = 0
        self.events_sent = 0

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        remaining = max(0, _LIMIT_REQUESTS - self.state.in_flight)
        limited = self.plan.error is not None and self.plan.error.status == 429
        headers = {
            "x-request-id": self.request_id,
            "openai-processing-ms": str(int((time.monotonic() - self.started) * 1000)),
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": str(_LIMIT_REQUESTS),
            "x-ratelimit-limit-tokens": str(_LIMIT_TOKENS),
            "x-ratelimit-remaining-requests": "0" if limited else str(remaining),
            "x-ratelimit-remaining-tokens": "0" if limited else str(_LIMIT_TOKENS),
            "x-ratelimit-reset-requests": "1s" if limited else "120ms",
            "x-ratelimit-reset-tokens": "1s" if limited else "0s",
        }
        headers.update(extra or {})
        return headers

    async def start(
        self,
        status: int,
        content_type: str,
        length: int | None,
        extra: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers=self.headers(extra))
        response.content_type = content_type
        if length is not None:
            response.content_length = length
        self.entry.status = status
        await response.prepare(self.request)
        return response

    async def send_json(
        self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
    ) -> web.StreamResponse:
        body = json.dumps(payload).encode()
        response = await self.start(status, "application/json", len(body), extra)
        await self.write(response, body)
        await response.write_eof()
        return response

    async def write(self, response: web.StreamResponse, data: bytes) -> None:
        reset_at = self.plan.reset_after_bytes
        if reset_at is not None and self.sent + len(data) >= reset_at:
            await response.write(data[: max(0, reset_at - self.sent)])
            await self._reset()
            raise _ConnectionAbortedError
        slow = self.plan.slow
        if slow is None:
            await response.write(data)
        else:
            for start in range(0, len(data), slow.chunk_bytes):
                await response.write(data[start : start + slow.chunk_bytes])
                await asyncio.sleep(slow.interval_s)
        self.sent += len(data)

    async def _reset(self) -> None:
        transport = self.request.transport
        if transport is None:
            return
        # Let what was written reach the socket, so the client sees a truncated body.
        for _ in range(100):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        self.state.journal.event(
            self.entry, "connection_reset_sent", f"after {self.plan.reset_after_bytes} bytes"
        )


def _check_auth(request: web.Request, config: EmulatorConfig) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise missing_api_key()
    if config.api_key is not None and not secrets.compare_digest(
        token.encode(), config.api_key.encode()
    ):
        raise wrong_api_key(token)


async def _images(request: web.Request, operation: Operation) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = f"req_{uuid.uuid4().hex}"
    entry = state.journal.begin(request_id, request.method, request.path, request.headers)
    responder = _Responder(request, entry, request_id)
    state.in_flight += 1
    try:
        # Before the body: a caller without a key gets OpenAI's 401, not a 400 about
        # its JSON, and a 64 MB upload is refused without being read.
        _check_auth(request, state.config)
        body = await read_body(request, state.config.max_file_bytes)
        entry.body_kind = body.kind
        entry.json = body.json
        entry.form = list(body.form)
        entry.files = [
            FileRecord(f.field, f.filename, f.content_type, f.size, f.sha256) for f in body.files
        ]
        state.journal.notify()
        fault_text = request.headers.get(FAULT_HEADER, state.default_faults)
        try:
            responder.plan = state.faults.plan(fault_text)
        except FaultSyntaxError as exc:
            raise bad_request(
                f"Invalid {FAULT_HEADER}: {exc}.", FAULT_HEADER, "invalid_value"
            ) from None
        plan = responder.plan
        if plan.applied:
            state.journal.event(entry, "fault", ", ".join(plan.applied))
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if plan.error is not None:
            raise plan.error
        # Off the event loop: building the job decodes every uploaded image.
        job = await asyncio.get_running_loop().run_in_executor(
            state.executor, build_job, operation, body
        )
        latency = (plan.latency or state.config.latency).sample(state.rng)
        if job.stream:
            return await _stream(responder, job, latency)
        await asyncio.sleep(latency)
        images = await _render_all(state, job)
        return await responder.send_json(200, _payload(request, state, job, images))
    except ApiError as error:
        return await _send_error(responder, error)
    except _ConnectionAbortedError:
        return web.Response(status=499)  # the transport is gone; aiohttp writes nothing
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client goes away (handler_cancellation).
        state.journal.event(entry, "client_disconnected", "before the response finished")
        raise
    except (ConnectionResetError, ConnectionError):
        state.journal.event(entry, "client_disconnected", "while writing the response")
        return web.Response(status=499)
    except Exception:
        log.exception("emulator request %s failed", request_id)
        return await _send_error(
            responder,
            ApiError(500, "The server had an error while processing your request.", "server_error"),
        )
    finally:
        state.in_flight -= 1
        state.journal.event(entry, "finished", str(entry.status))


async def _send_error(responder: _Responder, error: ApiError) -> web.StreamResponse:
    try:
        return await responder.send_json(error.status, error.body(), error.headers)
    except _ConnectionAbortedError:
        return web.Response(status=499)


def _spec(job: Job, index: int) -> RenderSpec:
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
    )


def _render_one(state: EmulatorState, job: Job, index: int) -> bytes:
    spec = _spec(job, index)
    renderer = state.renderer
    if job.operation is Operation.GENERATION:
        return renderer.generate(spec)
    if job.operation is Operation.EDIT:
        return renderer.edit(spec, job.pictures[0], job.mask_picture, job.markup_picture)
    return renderer.variation(spec, job.pictures[0])


async def _render_all(state: EmulatorState, job: Job) -> list[bytes]:
    loop = asyncio.get_running_loop()
    return list(
        await asyncio.gather(
            *(
                loop.run_in_executor(state.executor, _render_one, state, job, i)
                for i in range(job.n)
            )
        )
    )


def _usage(job: Job) -> dict[str, Any]:
    inputs = [(u.info.width or 0, u.info.height or 0) for u in job.images if u.info]
    return usage(job.prompt, inputs, job.quality, job.width, job.height, job.n, job.partial_images)


def _payload(
    request: web.Request, state: EmulatorState, job: Job, images: list[bytes]
) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for image in images:
        if job.response_format == "url":
            name = state.urls.put(image, _CONTENT_TYPES[job.output_format], job.output_format)
            origin = state.config.public_base_url or str(request.url.origin())
            item: dict[str, Any] = {"url": f"{origin.rstrip('/')}{IMAGE_PATH}{name}"}
        else:
            item = {"b64_json": base64.b64encode(image).decode()}
        if job.model == "dall-e-3":
            item["revised_prompt"] = f"{job.prompt.strip()}, rendered in a {job.style} style."
        data.append(item)
    payload: dict[str, Any] = {"created": int(time.time()), "data": data}
    if job.rules.gpt_image:
        payload.update(
            background="transparent" if job.transparent else "opaque",
            output_format=job.output_format,
            quality=job.quality,
            size=job.size,
            usage=_usage(job),
        )
    return payload


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


async def _stream(responder: _Responder, job: Job, latency: float) -> web.StreamResponse:
    """OpenAI's image streaming: per image, ``partial_images`` previews then the final
    image; completed events carry no image index (as OpenAI's don't)."""
    state = responder.state
    prefix = "image_generation" if job.operation is Operation.GENERATION else "image_edit"
    response = await responder.start(200, "text/event-stream", None, {"cache-control": "no-cache"})
    loop = asyncio.get_running_loop()
    common = {
        "size": job.size,
        "quality": job.quality,
        "background": "transparent" if job.transparent else "opaque",
        "output_format": job.output_format,
    }
    steps = job.n * (job.partial_images + 1)
    per_image_usage = _usage(job) if job.n == 1 else _usage(_single(job))
    for index in range(job.n):
        final = await loop.run_in_executor(state.executor, _render_one, state, job, index)
        for step in range(job.partial_images):
            await asyncio.sleep(latency / steps)
            preview = await loop.run_in_executor(
                state.executor,
                state.renderer.partial,
                final,
                _spec(job, index),
                step,
                job.partial_images,
            )
            event = {
                "type": f"{prefix}.partial_image",
                "b64_json": base64.b64encode(preview).decode(),
                "created_at": int(time.time()),
                "partial_image_index": step,
                **common,
            }
            if not await _send_event(responder, response, event):
                return response
        await asyncio.sleep(latency / steps)
        event = {
            "type": f"{prefix}.completed",
            "b64_json": base64.b64encode(final).decode(),
            "created_at": int(time.time()),
            **common,
            "usage": per_image_usage,
        }
        if not await _send_event(responder, response, event):
            return response
    await response.write_eof()
    return response


async def _send_event(
    responder: _Responder, response: web.StreamResponse, event: dict[str, Any]
) -> bool:
    """Send ``event``, or end the stream with the fault plan's ``error`` event (False)."""
    failure = responder.plan.stream_error_event(responder.events_sent)
    if failure is not None:
        await responder.write(response, _sse(failure))
        await response.write_eof()
        return False
    await responder.write(response, _sse(event))
    responder.events_sent += 1
    return True


def _single(job: Job) -> Job:
    return replace(job, n=1)


async def _generations(request: web.Request) -> web.StreamResponse:
    return await _images(request, Operation.GENERATION)


async def _edits(request: web.Request) -> web.StreamResponse:
    return await _images(request, Operation.EDIT)


async def _variations(request: web.Request) -> web.StreamResponse:
    return await _images(request, Operation.VARIATION)


async def _image_file(request: web.Request) -> web.StreamResponse:
    stored = request.app[STATE].urls.get(request.match_info["name"])
    if stored is False:
        return web.Response(status=403, text="AuthenticationFailed: signed URL expired.")
    if stored is None or stored is True:
        return web.Response(status=404, text="BlobNotFound")
    return web.Response(body=stored.data, content_type=stored.content_type)


async def _journal(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].journal.to_json())


async def _reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.journal.clear()
    state.faults.reset()
    return web.json_response({"ok": True})


async def _set_faults(request: web.Request) -> web.Response:
    """Replace the default faults at runtime: body ``{"faults": "503;first=2"}``."""
    state = request.app[STATE]
    try:
        payload = await request.json()
        text = str(payload["faults"])
        FaultInjector.check(text)
    except (ValueError, KeyError, TypeError):
        return web.json_response(
            bad_request('Expected {"faults": "..."} in the documented syntax.').body(),
            status=400,
        )
    state.default_faults = text
    return web.json_response({"ok": True, "faults": text})


async def _health(request: web.Request) -> web.Response:
    del request
    return web.json_response({"status": "ok"})


async def _not_found(request: web.Request) -> web.Response:
    error = ApiError(404, f"Invalid URL ({request.method} {request.path[:200]})")
    return web.json_response(error.body(), status=404)


def build_app(state: EmulatorState) -> web.Application:
    # Large enough for JSON edits carrying 16 images as data: URLs.
    app = web.Application(client_max_size=16 * 28 * 1024 * 1024)
    app[STATE] = state
    app.router.add_post("/v1/images/generations", _generations)
    app.router.add_post("/v1/images/edits", _edits)
    app.router.add_post("/v1/images/variations", _variations)
    app.router.add_get(IMAGE_PATH + "{name}", _image_file)
    app.router.add_get("/_emulator/requests", _journal)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_post("/_emulator/faults", _set_faults)
    app.router.add_get("/_emulator/health", _health)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app
