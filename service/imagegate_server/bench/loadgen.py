"""One way for a scenario to drive a path: the native generator when it is installed,
else the Python client, and the name of whichever ran (it goes into every row).

Both ways run a closed loop of ``calls`` calls, ``concurrency`` at a time, bounded by
``time_limit_s``; both count a call as failed on any non-OK status. Neither checks
the answer's content (ghz and hey cannot): scenarios that must, such as soak, use
their own Python calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from imagegate_server.bench.clients import GrpcPool, decode_images, direct_client
from imagegate_server.bench.descriptors import descriptor_set
from imagegate_server.bench.measure import Call, LoadResult, closed_loop
from imagegate_server.bench.native import Ghz, Hey, Tools, find_tools
from imagegate_server.bench.procs import API_KEY

PYTHON_GRPC = "python grpc.aio"
PYTHON_HTTP = "python httpx"


@dataclass(frozen=True)
class Generators:
    tools: Tools
    protoset: Path | None
    descriptors: str
    """Where ghz's descriptors came from (``buf build`` or the Python stubs)."""
    workdir: Path

    @classmethod
    def prepare(cls, tools_dir: str | None, use_native: bool, workdir: Path) -> Generators:
        tools = find_tools(tools_dir, use_native)
        workdir.mkdir(parents=True, exist_ok=True)
        protoset, descriptors = None, ""
        if tools.ghz is not None:
            protoset = workdir / "imagegate.binpb"
            descriptors = descriptor_set(protoset)
        return cls(tools, protoset, descriptors, workdir)

    @classmethod
    def python_only(cls, workdir: Path) -> Generators:
        return cls(find_tools(None, use_native=False), None, "", workdir)

    @property
    def grpc_name(self) -> str:
        return str(self.tools.ghz) if self.tools.ghz else PYTHON_GRPC

    @property
    def http_name(self) -> str:
        return str(self.tools.hey) if self.tools.hey else PYTHON_HTTP

    @property
    def native(self) -> bool:
        return self.tools.ghz is not None and self.tools.hey is not None

    def note(self) -> str:
        """What drove the paths, for the scenario's notes (a fallback says so)."""
        used = f"load generators: gateway {self.grpc_name}, direct {self.http_name}"
        if self.tools.ghz is not None:
            used += f" ({self.descriptors})"
        missing = self.tools.missing_note()
        return f"{used}. FALLBACK: {missing}" if missing else used

    async def unary(
        self,
        target: str,
        method: str,
        request: Message | Sequence[Message],
        concurrency: int,
        calls: int,
        time_limit_s: float,
        fallback: Callable[[GrpcPool], Call],
        connections: int = 1,
        metadata: dict[str, str] | None = None,
    ) -> LoadResult:
        """A gRPC method (``package.Service/Method``) through ghz, else through the
        Python call ``fallback`` makes from a pool of ``connections`` channels. A
        sequence of requests is a client stream (uploads), sent in order."""
        if self.tools.ghz is not None and self.protoset is not None:
            ghz = Ghz(self.tools.ghz, self.protoset, self.workdir)
            return await ghz.run(
                target, method, request, concurrency, calls, time_limit_s, connections, metadata
            )
        pool = GrpcPool(target, connections)
        try:
            await pool.ready()
            return await closed_loop(fallback(pool), concurrency, calls, time_limit_s)
        finally:
            await pool.close()

    async def post(
        self,
        url: str,
        body: bytes,
        content_type: str,
        concurrency: int,
        calls: int,
        time_limit_s: float,
        fallback: Call,
    ) -> LoadResult:
        """POST ``body`` to the emulator with the bench's key, through hey, else
        through the Python call ``fallback``."""
        if self.tools.hey is not None:
            hey = Hey(self.tools.hey, self.workdir)
            headers = {"Authorization": f"Bearer {API_KEY}"}
            return await hey.run(url, body, content_type, headers, concurrency, calls, time_limit_s)
        return await closed_loop(fallback, concurrency, calls, time_limit_s)

    async def post_json(
        self,
        base_url: str,
        path: str,
        body: dict[str, Any],
        concurrency: int,
        calls: int,
        time_limit_s: float,
    ) -> LoadResult:
        """POST a JSON body to the emulator through hey, else httpx (which also decodes
        the answer's base64, as the gateway does)."""
        http = direct_client(base_url, max(4, concurrency), 30)

        async def call() -> None:
            response = await http.post(path, json=body)
            response.raise_for_status()
            decode_images(response.json())

        url = base_url.rstrip("/") + "/" + path
        payload = json.dumps(body).encode()
        try:
            return await self.post(
                url, payload, "application/json", concurrency, calls, time_limit_s, call
            )
        finally:
            await http.aclose()
