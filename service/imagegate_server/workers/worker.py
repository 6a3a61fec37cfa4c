"""One worker: ``python -m imagegate_server.workers.worker``, started by the supervisor.

It reads its :class:`~imagegate_server.workers.plan.WorkerPlan` from standard
input, builds its settings from the same sources as the supervisor (environment,
``.env``, secrets directory) with the plan's ports on top, and then is a gateway
like a single-process ``serve``: same start-up, same drain on SIGTERM. It reports
"serving" on standard output; it drains as well when its standard input closes
(the supervisor is gone).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import SecretStr

from imagegate_server import eventloop, logs
from imagegate_server.errors import StartupError
from imagegate_server.gateway.server import Gateway
from imagegate_server.gateway.upstream_set import SharedEmulator
from imagegate_server.serve import serve_gateway
from imagegate_server.settings import Settings
from imagegate_server.workers.plan import WorkerPlan, ready_line
from imagegate_server.workers.stdin import open_plan_pipe, wait_for_eof


class _WorkerField(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self._index
        return True


async def _main() -> int:
    pipe = await open_plan_pipe()
    plan = WorkerPlan.parse(await pipe.readline())
    settings = Settings(host=plan.host, port=plan.port)
    update: dict[str, object] = {
        "health_port": plan.health_port,
        "reuse_port": True,
        "metrics_port": None,  # the supervisor serves the sum of all workers
        "workers": None,
    }
    if plan.store_http_port is not None:
        update["store_http_port"] = plan.store_http_port
    settings = settings.model_copy(update=update)
    logs.configure(settings.log_level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerField(plan.index))
    shared = None
    if plan.emulator_url and plan.emulator_key:
        shared = SharedEmulator(plan.emulator_url, SecretStr(plan.emulator_key))
    stop = asyncio.Event()
    orphaned = asyncio.create_task(wait_for_eof(pipe, stop))

    def report(gateway: Gateway) -> None:
        sys.stdout.buffer.write(ready_line(port=gateway.port, health_port=gateway.health_port))
        sys.stdout.flush()

    try:
        # Without Redis to share the sweep's lease, one worker sweeps: two sweeping
        # the same directory would both count its deletions in the shared ledger.
        sweeps = plan.index == 0 or settings.redis_url is not None
        gateway = Gateway(settings, shared_emulator=shared, sweeps=sweeps)
        return await serve_gateway(gateway, None, stop=stop, on_serving=report)
    finally:
        orphaned.cancel()


def main() -> int:
    try:
        # The supervisor validated the settings; the loop is chosen before the plan.
        return eventloop.run(_main(), Settings().event_loop)
    except StartupError as exc:
        print(f"imagegate serve: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
