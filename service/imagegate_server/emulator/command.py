"""``imagegate emulator``: run the emulator on its own."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from imagegate_server.emulator.config import EmulatorConfig, LatencyModel
from imagegate_server.emulator.faults import FaultInjector, FaultSyntaxError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help="run the offline OpenAI-compatible Images API emulator",
        description="Serve /v1/images/{generations,edits,variations} offline, like OpenAI.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port (default 8089; 0 = any)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("IMAGEGATE_EMULATOR_API_KEY"),
        help="require this bearer key (default: $IMAGEGATE_EMULATOR_API_KEY; unset = any key)",
    )
    parser.add_argument("--latency-ms", type=float, default=0, help="fixed simulated latency")
    parser.add_argument("--jitter-ms", type=float, default=0, help="plus uniform [0, jitter)")
    parser.add_argument("--faults", default="", help="default faults, x-emulator-fault syntax")
    parser.add_argument(
        "--cached-renders", action="store_true", help="stamp cached templates (load tests)"
    )
    parser.add_argument(
        "--real-sizes",
        action="store_true",
        help="photographic images as large as OpenAI's (PNG, JPEG, WebP; for benchmarks)",
    )
    parser.add_argument("--url-ttl-s", type=float, default=3600, help="lifetime of image URLs")
    parser.add_argument("--public-base-url", default=None, help="origin used in image URLs")
    parser.add_argument(
        "--extra-model",
        action="append",
        default=[],
        metavar="NAME",
        help="also serve this model, like the newest GPT image model (repeatable); any "
        "model the emulator does not know is otherwise refused as OpenAI refuses it",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        FaultInjector.check(args.faults)
    except FaultSyntaxError as exc:
        print(f"imagegate emulator: invalid --faults: {exc}")
        return 2
    config = EmulatorConfig(
        api_key=args.api_key or None,
        latency=LatencyModel(args.latency_ms / 1000, args.jitter_ms / 1000),
        default_faults=args.faults,
        cached_renders=args.cached_renders,
        real_sizes=args.real_sizes,
        url_ttl_s=args.url_ttl_s,
        public_base_url=args.public_base_url,
        extra_models=frozenset(args.extra_model),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve(config, args.host, args.port))
    return 0


async def _serve(config: EmulatorConfig, host: str, port: int) -> None:
    # Here, not at the top: cli.py imports this module for --help, and the
    # server brings aiohttp and Pillow.
    from imagegate_server.emulator.server import Emulator

    emulator = Emulator(config)
    base_url = await emulator.start(host, port)
    print(f"imagegate emulator listening on {base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()
