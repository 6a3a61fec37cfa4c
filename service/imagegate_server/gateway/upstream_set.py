"""Which upstreams the gateway calls: the upstreams file's, or the one upstream of
``IMAGEGATE_OPENAI_*``: OpenAI (or a compatible server) with the configured key, or,
when no key is configured, an emulator (the worker supervisor's, or one started
here with a private key)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from pydantic import SecretStr

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.metrics.labels import DEFAULT_UPSTREAM
from imagegate_server.routing import UpstreamSet, UpstreamsFile, UpstreamSpec, transport
from imagegate_server.settings import Settings

# The start-up lines keep the logger name of the gateway they have always had.
log = logging.getLogger("imagegate_server.gateway.server")


@dataclass(frozen=True)
class SharedEmulator:
    """An emulator that another process runs for several gateways (the worker
    supervisor's): the gateway uses it instead of starting its own."""

    base_url: str
    api_key: SecretStr


async def upstream_set(
    settings: Settings,
    key: SecretStr | None,
    upstreams_file: UpstreamsFile | None,
    shared_emulator: SharedEmulator | None,
) -> tuple[UpstreamSet, Emulator | None]:
    """The upstreams file's upstreams, or the one upstream of the settings; with the
    emulator started for it, if one was (the caller stops it)."""
    if upstreams_file is not None:
        upstreams = upstreams_file.current()
        log.info(
            "routing over the upstreams file",
            extra={"upstreams": [spec.name for spec in upstreams.upstreams]},
        )
        if key is not None:
            log.warning(
                "IMAGEGATE_OPENAI_API_KEY is set but unused: IMAGEGATE_UPSTREAMS_FILE "
                "names every upstream (reference the key from there if it is one)"
            )
        return upstreams, None
    key, base_url, emulator = await _choose_upstream(settings, key, shared_emulator)
    config = transport(
        settings,
        name=DEFAULT_UPSTREAM,
        kind="openai",
        base_url=base_url,
        api_key=key,
        organization=settings.openai_organization,
        project=settings.openai_project,
    )
    return UpstreamSet((UpstreamSpec(config, None),), from_file=False), emulator


async def _choose_upstream(
    settings: Settings, key: SecretStr | None, shared_emulator: SharedEmulator | None
) -> tuple[SecretStr, str, Emulator | None]:
    """The key and base URL to call: OpenAI's, or an emulator's (ours, or the
    worker supervisor's) when no key is configured."""
    if key is not None:
        log.info("using the OpenAI API", extra={"upstream": settings.openai_base_url})
        return key, settings.openai_base_url, None
    if shared_emulator is not None:
        log.info(
            "no OpenAI key configured: serving from the supervisor's embedded emulator (offline)",
            extra={"upstream": shared_emulator.base_url},
        )
        return shared_emulator.api_key, shared_emulator.base_url, None
    # Offline default: a private key between us and our own emulator.
    key = SecretStr(secrets.token_urlsafe(24))
    emulator = Emulator(
        EmulatorConfig(
            api_key=key.get_secret_value(),
            cached_renders=settings.emulator_cache_renders,
            real_sizes=settings.emulator_real_sizes,
        )
    )
    try:
        base_url = await emulator.start("127.0.0.1", 0)
    except BaseException:
        await emulator.stop()
        raise
    log.info(
        "no OpenAI key configured: serving from the embedded emulator (offline)",
        extra={"upstream": base_url},
    )
    return key, base_url, emulator
