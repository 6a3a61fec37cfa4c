"""What the supervisor tells a child process, on the child's standard input.

One JSON line, then the pipe stays open: when the supervisor goes away (even
killed), the child reads end-of-file and drains, so no worker outlives it. The
emulator's private key travels here rather than in an argument (visible to every
user in ``ps``) or an environment variable (inherited by anything the child runs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    host: str
    port: int
    health_port: int | None
    emulator_url: str | None
    emulator_key: str | None
    store_http_port: int | None = None
    """The local result store's link port, reserved for every worker (None: S3)."""

    def line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> WorkerPlan:
        return cls(**json.loads(line))


@dataclass(frozen=True)
class EmulatorPlan:
    port: int
    api_key: str
    cached_renders: bool
    real_sizes: bool
    log_level: str

    def line(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> EmulatorPlan:
        return cls(**json.loads(line))


def ready_line(**fields: object) -> bytes:
    """What a child prints on its standard output once it serves."""
    return json.dumps(fields).encode() + b"\n"
