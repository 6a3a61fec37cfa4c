"""Settings of the gateway's processes: how one stops (the drain), its event loop,
memory and logging; and how several run together (workers, a shared port) with
their health and metrics ports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field

from imagegate_server.settings.units import MIB


class ProcessSettings(BaseModel):
    """One process: its drain on SIGTERM, event loop, allocator and log level."""

    drain_notice_s: float = Field(default=0.0, ge=0)
    """On SIGTERM: how long health reports NOT_SERVING while calls are still accepted,
    so load balancers stop routing here before the server refuses new calls."""
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    """After the notice: new calls are refused, in-flight calls get this long to finish."""
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    """The event loop of serve and its workers: ``auto`` runs on uvloop when it is
    installed (less CPU per call), else on asyncio's; ``uvloop`` requires it."""
    malloc_mmap_threshold_bytes: int = Field(default=2 * MIB, ge=0, le=32 * MIB)
    """glibc's malloc serves allocations from this size up from their own mappings,
    returned to the OS when freed (:mod:`imagegate_server.allocator`); 0 keeps
    glibc's dynamic threshold."""
    log_level: str = "INFO"
    """Python logging level name."""


class WorkersSettings(BaseModel):
    """Several processes on one port, and the health and metrics ports beside it."""

    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] | None = None
    """``serve --workers``: run this many gateway processes on one port under a
    supervisor (``auto``: one per CPU this process may run on). Unset: one process,
    no supervisor."""
    reuse_port: bool = False
    """Let several processes listen on the gRPC (and health) port (SO_REUSEPORT; the
    supervisor sets it for its workers). Off, a second server on a busy port fails
    to start instead of silently sharing its traffic."""
    health_port: int | None = Field(default=None, ge=0, le=65535)
    """A second, always plaintext gRPC port on ``host`` serving only grpc.health.v1
    (services ``""``, ``imagegate.v1.ImagesService``, ``readiness``, ``liveness``),
    for kubelet probes when the main port requires TLS or client certificates.
    Unset: no health port (health is still served on the main port)."""
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the Prometheus endpoint (``GET /metrics``, text format). Unset: no
    endpoint. With workers the supervisor serves it, summed over all workers."""
    metrics_host: str | None = None
    """Address the metrics endpoint binds; unset: the gateway's ``host``."""
    metrics_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "PROMETHEUS_MULTIPROC_DIR", "IMAGEGATE_METRICS_MULTIPROC_DIR"
        ),
    )
    """With workers: the directory (prometheus-client's ``PROMETHEUS_MULTIPROC_DIR``)
    where each worker writes its metric files and the supervisor sums them; its
    ``*.db`` files are removed at start. Unset: a private temporary directory. Put it
    on a memory file system (an ``emptyDir`` with ``medium: Memory``)."""
