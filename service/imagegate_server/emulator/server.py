"""The embeddable emulator: start it on a loopback port inside a running event loop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from aiohttp import web

from imagegate_server.emulator.app import build_app
from imagegate_server.emulator.config import EmulatorConfig
from imagegate_server.emulator.faults import FaultInjector
from imagegate_server.emulator.journal import Journal
from imagegate_server.emulator.renderer import Renderer
from imagegate_server.emulator.state import EmulatorState
from imagegate_server.emulator.urls import UrlStore


class Emulator:
    """An OpenAI-compatible Images server.

    >>> emulator = Emulator(EmulatorConfig(api_key="sk-test"))
    >>> base_url = await emulator.start()        # "http://127.0.0.1:PORT/v1"
    >>> ...                                      # openai.AsyncOpenAI(base_url=base_url)
    >>> await emulator.stop()
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or EmulatorConfig()
        self.journal = Journal()
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self._state: EmulatorState | None = None
        self._origin: str | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Bind and serve; returns the base URL for OpenAI clients (``.../v1``)."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        threads = self.config.render_threads or os.cpu_count() or 2
        self._state = EmulatorState(
            config=self.config,
            journal=self.journal,
            urls=UrlStore(self.config.url_ttl_s, self._clock),
            executor=ThreadPoolExecutor(threads, thread_name_prefix="emulator-render"),
            renderer=Renderer(cached=self.config.cached_renders, real_sizes=self.config.real_sizes),
            default_faults=self.config.default_faults,
        )
        # handler_cancellation: a client that disconnects cancels its handler, which is
        # how the journal learns that the caller went away mid-request.
        runner = web.AppRunner(
            build_app(self._state), handler_cancellation=True, access_log=None, shutdown_timeout=1
        )
        await runner.setup()
        # A deep accept queue: load tests open thousands of connections at once.
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._origin = f"http://{_url_host(bound_host)}:{bound_port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._state is not None:
            self._state.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def origin(self) -> str:
        """``http://host:port`` of the running server."""
        if self._origin is None:
            raise RuntimeError("emulator not started")
        return self._origin

    @property
    def base_url(self) -> str:
        """What clients take as the base URL: ``.../v1``, or in Azure mode the
        resource endpoint (the origin)."""
        return self.origin if self.config.azure else f"{self.origin}/v1"

    @property
    def faults(self) -> str:
        return self._state.default_faults if self._state else self.config.default_faults

    def set_faults(self, text: str) -> None:
        """Faults for requests without a fault header, from now on (header syntax)."""
        FaultInjector.check(text)
        if self._state is None:
            raise RuntimeError("emulator not started")
        self._state.default_faults = text

    def reset(self) -> None:
        """Forget journal entries and ``first=K`` counters."""
        self.journal.clear()
        if self._state is not None:
            self._state.faults.reset()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
