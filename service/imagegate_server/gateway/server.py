"""A running gateway: gRPC server, health, reflection, the upstream client and,
when no OpenAI key is configured, the embedded emulator as the upstream.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import secrets
from types import TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from imagegate.v1 import images_service_pb2
from pydantic import SecretStr

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.errors import StartupError
from imagegate_server.gateway.edge.servicer import ImagesServicer
from imagegate_server.gateway.edge.wire import add_images_service
from imagegate_server.models import replacement_for, retired
from imagegate_server.settings import Settings
from imagegate_server.upstream import RetryPolicy, Upstream, UpstreamConfig

log = logging.getLogger(__name__)

SERVICE_NAME = images_service_pb2.DESCRIPTOR.services_by_name["ImagesService"].full_name


class Gateway:
    """Start with ``await gateway.start()`` (or ``async with``); ``port`` is then bound."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.emulator: Emulator | None = None
        self._upstream: Upstream | None = None
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]

    async def start(self) -> int:
        """Raises :class:`StartupError` (after releasing whatever it had opened)."""
        try:
            return await self._start()
        except BaseException:
            await self.stop(0)
            raise

    async def _start(self) -> int:
        settings = self.settings
        key = settings.api_key()
        base_url = settings.openai_base_url
        if key is None:
            # Offline default: a private key between us and our own emulator.
            key = SecretStr(secrets.token_urlsafe(24))
            self.emulator = Emulator(
                EmulatorConfig(
                    api_key=key.get_secret_value(), cached_renders=settings.emulator_cache_renders
                )
            )
            base_url = await self.emulator.start("127.0.0.1", 0)
            log.info(
                "no OpenAI key configured: serving from the embedded emulator (offline)",
                extra={"upstream": base_url},
            )
        else:
            log.info("using the OpenAI API", extra={"upstream": base_url})
        self._upstream = Upstream(
            UpstreamConfig(
                base_url=base_url,
                api_key=key,
                organization=settings.openai_organization,
                project=settings.openai_project,
                connect_timeout_s=settings.connect_timeout_s,
                retry=RetryPolicy(
                    settings.max_retries, settings.retry_backoff_s, settings.retry_backoff_max_s
                ),
                max_connections=settings.max_connections,
                http2=settings.http2,
            )
        )
        server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", settings.max_send_message_bytes),
                ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
                ("grpc.so_reuseport", 1),
                *_receive_window(settings.receive_window_bytes),
                # Calls that arrive faster than the event loop accepts them wait in
                # gRPC core, which cancels them past this many (default 1000): a
                # burst of new calls would fail before reaching the servicer.
                ("grpc.server.max_pending_requests", settings.max_pending_calls),
                ("grpc.server.max_pending_requests_hard_limit", 2 * settings.max_pending_calls),
                # ... and cancels those waiting longer than this (default 30 s); a
                # caller's own deadline still ends the wait sooner.
                (
                    "grpc.server_max_unrequested_time_in_server",
                    math.ceil(settings.upstream_timeout_s),
                ),
            ]
        )
        refuse_retired = settings.refuses_retired_models(emulator=self.emulator is not None)
        if refuse_retired:
            today = datetime.datetime.now(datetime.UTC).date()
            default = settings.default_model
            if retired(default, today) is not None:
                log.warning(
                    "the default model is retired: calls that name no model will be refused",
                    extra={"model": default, "replacement": replacement_for(default, today)},
                )
        servicer = ImagesServicer(self._upstream, settings, refuse_retired=refuse_retired)
        add_images_service(servicer.behaviour, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        self._server = server
        address = f"{settings.host}:{settings.port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError:  # gRPC says only "Failed to bind"
            raise StartupError(
                f"cannot listen on {address}: the address is in use or not available here"
            ) from None
        await server.start()
        for service in ("", SERVICE_NAME):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", extra={"address": f"{settings.host}:{self.port}"})
        return self.port

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: health NOT_SERVING, refuse new calls, let in-flight calls finish."""
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        await self._health.enter_graceful_shutdown()
        if self._server is not None and self.port and self.settings.drain_notice_s > 0:
            await asyncio.sleep(self.settings.drain_notice_s)
        if self._server is not None:
            if self.port:
                log.info("draining", extra={"grace_s": grace})
            await self._server.stop(grace)
            self._server = None
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None
        if self.emulator is not None:
            await self.emulator.stop()
            self.emulator = None

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop(0)


def _receive_window(window_bytes: int) -> list[tuple[str, int]]:
    """A fixed per-call window; gRPC's default BDP probing grows it with the link."""
    if window_bytes == 0:
        return []
    return [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", window_bytes)]
