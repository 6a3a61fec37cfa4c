"""A real S3-compatible server for tests: SeaweedFS's ``weed server`` (master, volume,
filer and S3 gateway in one process) on free loopback ports, in a temporary
directory, with S3 credentials from its ``-s3.config`` file; stopped and restarted
on the same ports and directory for outage tests.

The binary is ``$IMAGEGATE_WEED`` (CI builds it with ``.ci/seaweedfs.sh``), else
the CI cache's. Without it, tests that need it fail under CI (``CI=true``: a missing
binary is a broken CI) and are skipped elsewhere, saying how to build it.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store
from support.serve import free_port

DEFAULT_BINARY = "/var/cache/imagegate-ci/seaweedfs/weed"
BUILD_HINT = ".ci/seaweedfs.sh /var/cache/imagegate-ci/seaweedfs (builds it from its Go module)"
ACCESS_KEY = "imagegate-test"
SECRET_KEY = "imagegate-test-secret-0123456789"
REGION = "us-east-1"
START_TIMEOUT_S = 90.0  # two shared cores: the first volume takes seconds to grow


def weed_binary() -> str:
    """The weed path, or a failed (CI) or skipped (elsewhere) test."""
    binary = os.environ.get("IMAGEGATE_WEED") or DEFAULT_BINARY
    if os.access(binary, os.X_OK):
        return binary
    message = f"SeaweedFS's weed is not at {binary} (needed by the S3 store tests): {BUILD_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class WeedServer:
    """One ``weed server -filer -s3`` process; ``start`` picks free ports the first time."""

    def __init__(self, directory: Path, bucket: str = "results") -> None:
        self.directory = directory
        self.bucket = bucket
        """Made at start (by the probe write), so tests can list it at once."""
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log = directory / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def store(self, bucket: str) -> S3Store:
        """A plain obstore client of ``bucket``, to look at what the store wrote."""
        return S3Store(
            bucket,
            endpoint=self.endpoint,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            region=REGION,
            client_options={
                "allow_http": True,
                "timeout": datetime.timedelta(seconds=10),
                "connect_timeout": datetime.timedelta(seconds=2),
            },
            retry_config={"max_retries": 1},
        )

    def start(self) -> None:
        """Start (or restart, on the same ports and data) and wait until S3 takes writes."""
        binary = weed_binary()
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        config.write_text(json.dumps(_identities()))
        for name in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc"):
            self.ports.setdefault(name, free_port())
        for name in ("s3", "s3_grpc"):
            self.ports.setdefault(name, free_port())
        p = self.ports
        args = [
            binary, "-logtostderr=false", f"-logdir={self.directory}", "server",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            "-master.electionTimeout=1s",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=8", "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
        ]  # fmt: skip
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_writable()

    def stop(self) -> None:
        """Kill the server: a crash, mid-request if one is under way (its data is a
        test's, and a graceful stop takes weed 15 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=30)
        # weed puts a Unix socket per gRPC port in /tmp, named by the port: ours.
        for name in ("master", "volume", "filer", "s3"):
            Path(f"/tmp/seaweedfs-{name}-grpc-{self.ports[f'{name}_grpc']}.sock").unlink(
                missing_ok=True
            )

    def __enter__(self) -> WeedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_writable(self) -> None:
        """Until a small object goes in (the S3 port answers before the filer and
        the first volume are ready): bounded, and the log in the failure."""
        probe = self.store(self.bucket)
        deadline = time.monotonic() + START_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                break
            try:
                obstore.put(probe, "probe", b"ok")  # sync: restarts happen inside tests
                return
            except Exception as error:
                last = type(error).__name__
                time.sleep(0.3)
        tail = self._log.read_text(errors="replace")[-3000:] if self._log.exists() else ""
        self.stop()
        raise RuntimeError(f"weed server did not take writes ({last}); its log ends:\n{tail}")


def _identities() -> dict[str, object]:
    return {
        "identities": [
            {
                "name": "imagegate",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
