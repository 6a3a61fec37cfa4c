"""One images request, start to finish: the stages every operation goes through.

journal it -> check the bearer key -> read the body (journalled) -> plan its faults
(delay, injected error) -> build the validated job (off the loop) -> wait the simulated
latency -> render -> answer as JSON or as server-sent events, through the responder.
Errors never carry exception text: they are OpenAI-shaped, details go to the log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid

from aiohttp import web

from imagegate_server.emulator.answers import (
    completed_event,
    images_response,
    partial_event,
    render_image,
    render_spec,
)
from imagegate_server.emulator.config import EmulatorConfig
from imagegate_server.emulator.errors import ApiError, bad_request, missing_api_key, wrong_api_key
from imagegate_server.emulator.faults import FAULT_HEADER, FaultPlan, FaultSyntaxError
from imagegate_server.emulator.jobs import Job, build_job
from imagegate_server.emulator.journal import FileRecord, JournalEntry
from imagegate_server.emulator.parsing import Body, read_body
from imagegate_server.emulator.responder import CLIENT_GONE, ConnectionAborted, Responder
from imagegate_server.emulator.state import STATE, EmulatorState
from imagegate_server.emulator.urls import IMAGE_PATH
from imagegate_server.imageformat import CONTENT_TYPES, EXTENSIONS
from imagegate_server.models import Operation

log = logging.getLogger("imagegate.emulator")

_SERVER_ERROR = "The server had an error while processing your request."


async def handle_images(request: web.Request, operation: Operation) -> web.StreamResponse:
    state = request.app[STATE]
    request_id = f"req_{uuid.uuid4().hex}"
    entry = state.journal.begin(request_id, request.method, request.path, request.headers)
    responder = Responder(request, state, entry, request_id)
    state.in_flight += 1
    try:
        # Before the body: a caller without a key gets OpenAI's 401, not a 400 about
        # its JSON, and a 64 MB upload is refused without being read.
        _check_auth(request, state.config)
        body = await read_body(request, state.config.max_file_bytes)
        _record(state, entry, body)
        responder.plan = plan = _plan(request, state, entry)
        if plan.delay_s:
            await asyncio.sleep(plan.delay_s)
        if plan.error is not None:
            raise plan.error
        # Off the event loop: building the job decodes every uploaded image.
        job = await asyncio.get_running_loop().run_in_executor(
            state.executor, build_job, operation, body, state.config.extra_models
        )
        latency = (plan.latency or state.config.latency).sample(state.rng)
        if job.stream:
            return await _stream(responder, job, latency)
        await asyncio.sleep(latency)
        return await _unary(responder, job)
    except ApiError as error:
        return await responder.send_error(error)
    except ConnectionAborted:
        return web.Response(status=CLIENT_GONE)  # the transport is gone
    except asyncio.CancelledError:
        # aiohttp cancels the handler when the client goes away (handler_cancellation).
        state.journal.event(entry, "client_disconnected", "before the response finished")
        raise
    except (ConnectionResetError, ConnectionError):
        state.journal.event(entry, "client_disconnected", "while writing the response")
        return web.Response(status=CLIENT_GONE)
    except Exception:
        log.exception("emulator request %s failed", request_id)
        return await responder.send_error(ApiError(500, _SERVER_ERROR, "server_error"))
    finally:
        state.in_flight -= 1
        state.journal.event(entry, "finished", str(entry.status))


def _check_auth(request: web.Request, config: EmulatorConfig) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise missing_api_key()
    if config.api_key is not None and not secrets.compare_digest(
        token.encode(), config.api_key.encode()
    ):
        raise wrong_api_key(token)


def _record(state: EmulatorState, entry: JournalEntry, body: Body) -> None:
    """Journal the body as received, before anything can refuse it."""
    entry.body_kind = body.kind
    entry.json = body.json
    entry.form = list(body.form)
    entry.files = [
        FileRecord(f.field, f.filename, f.content_type, f.size, f.sha256) for f in body.files
    ]
    state.journal.notify()


def _plan(request: web.Request, state: EmulatorState, entry: JournalEntry) -> FaultPlan:
    """The request's faults: its header's, or (without the header) the defaults."""
    fault_text = request.headers.get(FAULT_HEADER, state.default_faults)
    try:
        plan = state.faults.plan(fault_text)
    except FaultSyntaxError as exc:
        raise bad_request(
            f"Invalid {FAULT_HEADER}: {exc}.", FAULT_HEADER, "invalid_value"
        ) from None
    if plan.applied:
        state.journal.event(entry, "fault", ", ".join(plan.applied))
    return plan


async def _unary(responder: Responder, job: Job) -> web.StreamResponse:
    state = responder.state
    loop = asyncio.get_running_loop()
    images = await asyncio.gather(
        *(
            loop.run_in_executor(state.executor, render_image, state.renderer, job, i)
            for i in range(job.n)
        )
    )
    origin = state.config.public_base_url or str(responder.request.url.origin())

    def url_for(image: bytes) -> str:
        fmt = job.output_format
        name = state.urls.put(image, CONTENT_TYPES[fmt], EXTENSIONS[fmt])
        return f"{origin.rstrip('/')}{IMAGE_PATH}{name}"

    return await responder.send_json(200, images_response(job, list(images), url_for))


async def _stream(responder: Responder, job: Job, latency: float) -> web.StreamResponse:
    """OpenAI's image streaming: per image, ``partial_images`` previews then the final
    image, the simulated latency spread evenly over all of those events."""
    state = responder.state
    response = await responder.start(200, "text/event-stream", None, {"cache-control": "no-cache"})
    loop = asyncio.get_running_loop()
    pause = latency / (job.n * (job.partial_images + 1))
    for index in range(job.n):
        final = await loop.run_in_executor(state.executor, render_image, state.renderer, job, index)
        for step in range(job.partial_images):
            await asyncio.sleep(pause)
            preview = await loop.run_in_executor(
                state.executor,
                state.renderer.partial,
                final,
                render_spec(job, index),
                step,
                job.partial_images,
            )
            if not await responder.send_event(response, partial_event(job, preview, step)):
                return response
        await asyncio.sleep(pause)
        if not await responder.send_event(response, completed_event(job, final)):
            return response
    await response.write_eof()
    return response
