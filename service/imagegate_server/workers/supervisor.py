"""The supervisor of ``serve --workers``: starts, restarts and drains the workers.

It never creates a gRPC object (gRPC does not survive a fork, and the supervisor
has no calls to serve): workers are fresh interpreters started with exec. What it
does own: the reserved ports (gRPC, health, the local result store's link port),
the multiprocess metrics directory and the
``/metrics`` endpoint that sums it, the one emulator process in emulator mode,
and the signals. SIGTERM or SIGINT is passed to every worker, which drains exactly
as a single-process gateway does; the supervisor waits for all of them, then
stops the emulator and exits.

Each child runs in a slot that restarts it if it dies while serving (:mod:`.children`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imagegate_server.errors import StartupError
from imagegate_server.limits import SCHEMA as LIMITS_SCHEMA
from imagegate_server.limits import uses_local_database
from imagegate_server.localdb import LocalDatabase
from imagegate_server.metrics import MetricsEndpoint, multiprocess
from imagegate_server.settings import Settings
from imagegate_server.store import SCHEMA as STORE_SCHEMA
from imagegate_server.store.factory import link_host
from imagegate_server.workers import ports
from imagegate_server.workers.children import ChildFailed, Slot, keep_running, pid
from imagegate_server.workers.plan import EmulatorPlan, WorkerPlan

log = logging.getLogger("imagegate_server.workers")

# Past the drain a worker is given this much more before it is killed.
STOP_MARGIN_S = 30.0


class Supervisor:
    """``exit_code = await Supervisor(settings, count, port_file).run()``."""

    def __init__(self, settings: Settings, count: int, port_file: Path | None) -> None:
        self.settings = settings
        self.count = count
        self.port_file = port_file
        self.port = 0
        self.health_port: int | None = None
        self.store_http_port: int | None = None
        self._stop = asyncio.Event()
        self._emulator_stop = asyncio.Event()
        self._sockets: list[socket.socket] = []
        self._own_directory = settings.metrics_multiproc_dir is None
        self._directory = settings.metrics_multiproc_dir or Path(
            tempfile.mkdtemp(prefix="imagegate-metrics-")
        )
        self._endpoint: MetricsEndpoint | None = None
        self._emulator_url: str | None = None
        self._emulator_key: str | None = None
        self._emulator_port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._emulator_task: asyncio.Task[None] | None = None
        self._first_ready: dict[str, asyncio.Future[None]] = {}
        self._workers: list[Slot] = []
        self._failed_exits = 0

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self._start()
            if self._stop.is_set():
                return 0
            await self._write_port_file()
            log.info(
                "serving",
                extra={
                    "address": f"{self.settings.host}:{self.port}",
                    "workers": self.count,
                    "pids": [s.process.pid for s in self._workers if s.process],
                },
            )
            await self._stop.wait()
            log.info("draining", extra={"workers": self.count})
        finally:
            await self._shutdown()
        code = 1 if self._failed_exits else 0
        log.info("stopped", extra={"exit_code": code})
        return code

    # -- start-up --------------------------------------------------------------------

    async def _start(self) -> None:
        settings = self.settings
        multiprocess.prepare(self._directory)
        main = ports.reserve(settings.host, settings.port, "gRPC port")
        self._sockets.append(main)
        self.port = ports.bound_port(main)
        if settings.health_port is not None:
            health = ports.reserve(settings.host, settings.health_port, "health port")
            self._sockets.append(health)
            self.health_port = ports.bound_port(health)
        if settings.store_backend == "local":
            links = ports.reserve(link_host(settings), settings.store_http_port, "store link port")
            self._sockets.append(links)
            self.store_http_port = ports.bound_port(links)
        await self._check_limits_store()
        if settings.emulated():
            await self._start_emulator()
        if settings.metrics_port is not None:
            self._endpoint = MetricsEndpoint(multiprocess.collector_registry(self._directory))
            await self._endpoint.start(
                settings.metrics_host or settings.host, settings.metrics_port
            )
        for index in range(self.count):
            slot = Slot(
                name=f"worker {index}",
                index=index,
                module="imagegate_server.workers.worker",
                plan=self._worker_plan(index),
                stop_signal=signal.SIGTERM,
                stop_timeout_s=settings.drain_notice_s + settings.shutdown_grace_s + STOP_MARGIN_S,
                on_ready=self._worker_ready,
            )
            self._workers.append(slot)
            self._tasks.append(self._supervise(slot, self._stop))
        await self._until_ready([s.name for s in self._workers])

    async def _check_limits_store(self) -> None:
        """Opens (and migrates) the workers' shared database once before they start,
        so a data directory that cannot be used stops ``serve`` with its one line."""
        settings = self.settings
        if uses_local_database(settings):
            database = await LocalDatabase.open(settings.data_dir, LIMITS_SCHEMA, STORE_SCHEMA)
            await database.aclose()
        elif settings.redis_url is None and self.count > 1:
            log.warning(
                "IMAGEGATE_LIMITS_STORE=memory: each of the %d workers keeps its own limits "
                "and spend, so a client gets up to %d times its limits",
                self.count,
                self.count,
                extra={"workers": self.count},
            )

    def _worker_plan(self, index: int) -> Callable[[], bytes]:
        def plan() -> bytes:
            return WorkerPlan(
                index=index,
                host=self.settings.host,
                port=self.port,
                health_port=self.health_port,
                emulator_url=self._emulator_url,
                emulator_key=self._emulator_key,
                store_http_port=self.store_http_port,
            ).line()

        return plan

    async def _start_emulator(self) -> None:
        self._emulator_key = secrets.token_urlsafe(24)
        key = self._emulator_key

        def plan() -> bytes:
            # A replacement takes the first one's port: the workers know that URL.
            return EmulatorPlan(
                port=self._emulator_port,
                api_key=key,
                cached_renders=self.settings.emulator_cache_renders,
                real_sizes=self.settings.emulator_real_sizes,
                log_level=self.settings.log_level,
            ).line()

        def ready(slot: Slot, report: dict[str, Any]) -> None:
            self._emulator_url = str(report["base_url"])
            self._emulator_port = int(self._emulator_url.rsplit(":", 1)[1].split("/", 1)[0])
            log.info(
                "no OpenAI key configured: the workers share one embedded emulator (offline)",
                extra={"upstream": self._emulator_url, "pid": pid(slot)},
            )

        slot = Slot("emulator", None, "imagegate_server.workers.emulator", plan, None, 10.0, ready)
        self._emulator_task = self._supervise(slot, self._emulator_stop)
        await self._until_ready([slot.name])

    def _worker_ready(self, slot: Slot, report: dict[str, Any]) -> None:
        message = "worker restarted" if slot.served else "worker serving"
        log.info(message, extra={"worker": slot.index, "pid": pid(slot)})

    async def _until_ready(self, names: list[str]) -> None:
        """Until every named child has served once; a failure stops the start-up."""
        waiting: set[asyncio.Future[Any]] = {self._first_ready[n] for n in names}
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while waiting and not self._stop.is_set():
                done, waiting = await asyncio.wait(
                    waiting | {stop}, return_when=asyncio.FIRST_COMPLETED
                )
                waiting.discard(stop)
                for future in done - {stop}:
                    error = future.exception()
                    if isinstance(error, ChildFailed):
                        raise StartupError(f"{error}; see its log lines above") from None
        finally:
            stop.cancel()

    async def _write_port_file(self) -> None:
        if self.port_file is None:
            return
        try:
            await asyncio.to_thread(self.port_file.write_text, f"{self.port}\n")
        except OSError:
            raise StartupError(
                f"cannot write the port file {str(self.port_file)[:200]!r}"
            ) from None

    # -- supervision -----------------------------------------------------------------

    def _supervise(self, slot: Slot, stop: asyncio.Event) -> asyncio.Task[None]:
        self._first_ready[slot.name] = asyncio.get_running_loop().create_future()
        return asyncio.create_task(self._keep_running(slot, stop))

    async def _keep_running(self, slot: Slot, stop: asyncio.Event) -> None:
        if not await keep_running(slot, stop, self._first_ready[slot.name], self._directory):
            self._failed_exits += 1

    # -- shutdown --------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Only now: draining workers were still finishing calls on it.
        self._emulator_stop.set()
        if self._emulator_task is not None:
            await asyncio.gather(self._emulator_task, return_exceptions=True)
        if self._endpoint is not None:
            await self._endpoint.stop()
        for sock in self._sockets:
            sock.close()
        if self._own_directory:
            shutil.rmtree(self._directory, ignore_errors=True)
