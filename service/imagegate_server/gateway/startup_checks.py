"""What the gateway judges of its upstreams as it starts: whether calls for retired
models are refused here (with a warning when the default model is one), and whether
each upstream takes a connection (the first value of ``imagegate_upstream_up``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from urllib.parse import urlsplit

from imagegate_server.metrics import Metrics
from imagegate_server.models import replacement_for, retired
from imagegate_server.routing import UpstreamSet
from imagegate_server.settings import OPENAI_API_HOST, Settings

# The start-up lines keep the logger name of the gateway they have always had.
log = logging.getLogger("imagegate_server.gateway.server")


def refuses_retired(settings: Settings, emulated: bool, upstreams: UpstreamSet) -> bool:
    """Whether calls naming a retired model are refused here; warns at start-up when
    that includes calls that name no model (the default model is retired). With an
    upstreams file, ``auto`` refuses them when every upstream is OpenAI's own API
    (as the file read at start-up says)."""
    refuse_retired = settings.refuses_retired_models(emulator=emulated)
    if upstreams.from_file and settings.refuse_retired_models == "auto":
        refuse_retired = all(
            spec.config.kind == "openai"
            and urlsplit(spec.config.base_url).hostname == OPENAI_API_HOST
            for spec in upstreams.upstreams
        )
    if refuse_retired:
        today = datetime.datetime.now(datetime.UTC).date()
        default = settings.default_model
        if retired(default, today) is not None:
            log.warning(
                "the default model is retired: calls that name no model will be refused",
                extra={"model": default, "replacement": replacement_for(default, today)},
            )
    return refuse_retired


async def probe_upstreams(upstreams: UpstreamSet, timeout_s: float, metrics: Metrics) -> None:
    """Start-up value of ``imagegate_upstream_up`` of each upstream: can a TCP
    connection be made? From then on every upstream request updates it."""
    await asyncio.gather(
        *(
            _probe_upstream(spec.name, spec.config.base_url, timeout_s, metrics)
            for spec in upstreams.upstreams
        )
    )


async def _probe_upstream(name: str, base_url: str, timeout_s: float, metrics: Metrics) -> None:
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.hostname is None:
        return
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), timeout_s)
    except (OSError, TimeoutError):
        metrics.set_upstream_up(name, False)
        return
    metrics.set_upstream_up(name, True)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
