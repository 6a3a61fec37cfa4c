"""Native load generators: ghz for the gateway (gRPC), hey for the emulator (HTTP).

A Python client on two shared cores is itself the bottleneck (issue 13: httpx
made the direct path look 2.5x slower than it is), so the bench drives both
paths with Go load generators when they are installed, and falls back to its
Python clients, saying so, when they are not.

Where they are looked for, first match wins: ``--tools DIR`` (default
``$IMAGEGATE_BENCH_TOOLS``), then ``PATH``, then ``$GOBIN`` and ``~/go/bin`` (where
``go install`` puts them). ``.ci/bench-tools.sh`` installs the pinned versions.

ghz needs the service's descriptors: :mod:`.descriptors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.message import Message

from imagegate_server.bench.measure import LoadResult

GHZ_MODULE = "github.com/bojand/ghz"
HEY_MODULE = "github.com/rakyll/hey"
# Per call, past the caller's own time limit of a phase: a stuck call fails, never hangs.
CALL_TIMEOUT_S = 60


def _go_name(code: grpc.StatusCode) -> str:
    """A code as ghz names it, Go's way: InvalidArgument, Canceled (one L), OK."""
    return {"OK": "OK", "CANCELLED": "Canceled"}.get(code.name, code.name.title().replace("_", ""))


_GRPC_CODE_NAMES = {_go_name(code): code.name for code in grpc.StatusCode}


@dataclass(frozen=True)
class Tool:
    name: str
    path: str
    version: str
    """The module version the binary was built from (its Go build info), or ``unknown``."""

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Tools:
    """The native generators found (None: not found, the Python client runs instead)."""

    ghz: Tool | None
    hey: Tool | None
    searched: str
    """Where they were looked for, for the report's fallback note."""

    def missing_note(self) -> str:
        """What the report says when a generator is missing; empty when both are there."""
        missing = [n for n, t in (("ghz", self.ghz), ("hey", self.hey)) if t is None]
        if not missing:
            return ""
        return (
            f"{' and '.join(missing)} not found ({self.searched}): the Python clients "
            "(grpc.aio, httpx) drove those paths instead, and a Python client on shared "
            "cores is itself a bottleneck; install the native generators with "
            ".ci/bench-tools.sh DIR and pass --tools DIR"
        )


def find_tools(tools_dir: str | None, use_native: bool = True) -> Tools:
    """Look for ghz and hey; ``use_native=False`` finds none (``--python-clients``)."""
    if not use_native:
        return Tools(None, None, "--python-clients given")
    dirs = [Path(tools_dir)] if tools_dir else []
    gobin = os.environ.get("GOBIN")
    extra = [Path(gobin)] if gobin else []
    extra.append(Path.home() / "go" / "bin")
    searched = ", ".join([*(f"--tools {d}" for d in dirs), "PATH", *(str(d) for d in extra)])

    def find(name: str, module: str) -> Tool | None:
        for directory in dirs:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return Tool(name, str(candidate), _module_version(candidate, module))
        on_path = shutil.which(name)
        if on_path:
            return Tool(name, on_path, _module_version(Path(on_path), module))
        for directory in extra:
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return Tool(name, str(candidate), _module_version(candidate, module))
        return None

    return Tools(find("ghz", GHZ_MODULE), find("hey", HEY_MODULE), searched)


def _module_version(binary: Path, module: str) -> str:
    """The version of ``module`` in a Go binary's build info (``go version -m`` reads
    the same text), so the report names what ran without needing Go installed.
    ``go install`` builds print ``dev`` for ``--version``; the build info is exact."""
    pattern = re.compile(rb"mod\t" + re.escape(module.encode()) + rb"\t(v[0-9A-Za-z.+-]+)")
    try:
        with binary.open("rb") as handle:
            data = handle.read()
    except OSError:
        return "unknown"
    match = pattern.search(data)
    return match.group(1).decode() if match else "unknown"


@dataclass(frozen=True)
class Ghz:
    """ghz against one gRPC method: ``await ghz.run(...)`` -> :class:`LoadResult`."""

    tool: Tool
    protoset: Path
    workdir: Path

    async def run(
        self,
        target: str,
        method: str,
        request: Message | Sequence[Message],
        concurrency: int,
        calls: int,
        time_limit_s: float,
        connections: int = 1,
        metadata: dict[str, str] | None = None,
    ) -> LoadResult:
        """``calls`` calls over ``connections`` HTTP/2 connections, ``concurrency``
        at a time. A sequence of messages is a client stream: ghz sends them in order
        on every call. Bounded by :func:`_run`, not by ghz's ``--max-duration``: in
        ghz 0.120.0 that option drops ``--total`` and runs for the whole duration."""
        binary = _binary_data(request)
        data = self.workdir / f"ghz-{_slug(method)}.bin"
        await asyncio.to_thread(data.write_bytes, binary)
        out = self.workdir / "ghz.json"
        # ghz takes an empty binary file for no data at all: an empty message is {}.
        payload = ["--binary-file", str(data)] if binary else ["--data", "{}"]
        argv = [
            self.tool.path,
            "--insecure",
            "--protoset", str(self.protoset),
            "--call", method,
            *payload,
            "--total", str(calls),
            "--concurrency", str(concurrency),
            "--connections", str(max(1, min(connections, concurrency))),
            "--timeout", f"{CALL_TIMEOUT_S}s",
            "--max-recv-message-size", "80MiB",
            "--disable-template-functions",
            "--disable-template-data",
            "--format", "json",
            "--output", str(out),
        ]  # fmt: skip
        if metadata:
            argv += ["--metadata", json.dumps(metadata)]
        await _run([*argv, target], time_limit_s)
        return parse_ghz(await asyncio.to_thread(out.read_text))


def _binary_data(request: Message | Sequence[Message]) -> bytes:
    """ghz ``--binary-file``: one serialized message, or for a client stream several,
    each prefixed with its length as a varint (protobuf's delimited format)."""
    if isinstance(request, Message):
        return request.SerializeToString()
    out = bytearray()
    for message in request:
        body = message.SerializeToString()
        out += _varint(len(body)) + body
    return bytes(out)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def parse_ghz(text: str) -> LoadResult:
    """ghz's ``--format json`` report: every call's latency and status, from its
    ``details`` (so percentiles are computed the same way as for the Python clients),
    and the run's total time."""
    report = json.loads(text)
    result = LoadResult(elapsed_s=float(report.get("total", 0)) / 1e9)
    for detail in report.get("details") or ():
        status = str(detail.get("status", "Unknown"))
        if status == "OK" and not detail.get("error"):
            result.latencies_s.append(float(detail["latency"]) / 1e9)
        else:
            result.errors[f"grpc {_GRPC_CODE_NAMES.get(status, status)}"] += 1
    return result


@dataclass(frozen=True)
class Hey:
    """hey against one HTTP route: ``await hey.run(...)`` -> :class:`LoadResult`."""

    tool: Tool
    workdir: Path

    async def run(
        self,
        url: str,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
        concurrency: int,
        calls: int,
        time_limit_s: float,
    ) -> LoadResult:
        """``calls`` POSTs (rounded up to a multiple of ``concurrency``: hey gives each
        of its workers the same share), ``concurrency`` connections, HTTP/1.1 with
        keep-alive, as the gateway's own upstream client talks."""
        calls = concurrency * math.ceil(calls / concurrency)
        data = self.workdir / "hey-body"
        await asyncio.to_thread(data.write_bytes, body)
        argv = [
            self.tool.path,
            "-n", str(calls),
            "-c", str(concurrency),
            "-m", "POST",
            "-T", content_type,
            "-D", str(data),
            "-t", str(CALL_TIMEOUT_S),
            "-o", "csv",
        ]  # fmt: skip
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        out = await _run([*argv, url], time_limit_s)
        return parse_hey_csv(out, calls)


def parse_hey_csv(text: str, requested: int) -> LoadResult:
    """hey's ``-o csv``: one row per answered request (seconds, 0.1 ms resolution).

    Only 2xx rows are successes; other statuses are errors by status, and requests
    with no row at all (hey leaves out transport errors) are errors too. The phase
    lasts until the last answer: max(offset + response time).
    """
    result = LoadResult()
    rows = 0
    end = 0.0
    for row in csv.DictReader(io.StringIO(text)):
        rows += 1
        seconds = float(row["response-time"])
        end = max(end, float(row["offset"]) + seconds)
        status = int(row["status-code"])
        if 200 <= status < 300:
            result.latencies_s.append(seconds)
        else:
            result.errors[f"http {status}"] += 1
    if requested > rows:
        result.errors["no answer (hey)"] += requested - rows
    result.elapsed_s = end
    return result


async def _run(argv: list[str], time_limit_s: float) -> str:
    """Run a generator, bounded: past the phase's time limit, one call's timeout and a
    minute more it is killed and the phase fails (its report would be incomplete)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), time_limit_s + CALL_TIMEOUT_S + 60)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise RuntimeError(f"{Path(argv[0]).name} did not finish in time") from None
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"{Path(argv[0]).name} exited {process.returncode}: {tail}")
    return out.decode(errors="replace")


def _slug(method: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", method).strip("-")
