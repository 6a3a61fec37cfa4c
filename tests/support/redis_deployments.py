"""Real Redis deployments for tests, from Debian's ``redis-server``, ``redis-sentinel``
and ``redis-cli``, on loopback ports: a single server with TLS or ACLs, a Redis
Cluster (``--cluster-enabled yes`` nodes joined by ``redis-cli --cluster create``,
with replicas when asked) and a Sentinel set (a primary, a replica, three sentinels).

Every wait is bounded (generous: two shared cores); every process is ours, stopped
(SIGTERM) when its owner ends, or killed (SIGKILL) by a test that wants a crash.
Without the binaries, tests fail under CI (``CI=true``: CI installs them) and are
skipped elsewhere, saying how to install them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest
import redis
from redis.crc import key_slot
from tls.tls_support import CertificateAuthority

INSTALL_HINT = "apt-get install -y --no-install-recommends redis-server redis-sentinel"
START_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 90.0


def binary(name: str) -> str:
    """The path of ``name`` (redis-server, redis-sentinel, redis-cli), or a failed (CI)
    or skipped (elsewhere) test."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (needed by the Redis tests): {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Tls:
    """Certificates made by the test: a CA, the servers' pair (127.0.0.1 and
    localhost), and a client pair for servers that require one."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, directory: Path) -> Tls:
        directory.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority("imagegate redis test CA")
        ca_file = directory / "ca.crt"
        ca_file.write_bytes(ca.cert_pem)
        server_cert, server_key = ca.server("redis").write(directory, "server")
        client_cert, client_key = ca.issue("imagegate").write(directory, "client")
        return cls(ca_file, server_cert, server_key, client_cert, client_key)

    def client_kwargs(self, *, certificate: bool = True) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.ca_file)}
        if certificate:
            kwargs |= {"ssl_certfile": str(self.client_cert), "ssl_keyfile": str(self.client_key)}
        return kwargs


class RedisNode:
    """One ``redis-server`` (or, with ``sentinel``, ``redis-sentinel``) process: a free
    loopback port the first time it starts, no persistence; stopped and restarted on
    the same port for outage tests."""

    def __init__(
        self,
        directory: Path,
        name: str = "redis",
        *,
        sentinel: bool = False,
        password: str | None = None,
        tls: Tls | None = None,
        tls_auth_clients: str = "no",
        config: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        self.name = name
        self.sentinel = sentinel
        self.password = password
        self.tls = tls
        self.tls_auth_clients = tls_auth_clients
        self.config = list(config)
        """Extra lines of redis.conf; ``{port}`` in them is this node's port,
        ``{free_port}`` another free port (picked again if starting must be retried)."""
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}.log"

    def _conf(self) -> str:
        lines = [
            "bind 127.0.0.1",
            f"dir {self.directory}",
            f"logfile {self.log}",
            "daemonize no",
        ]
        if self.tls is not None:
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.tls.server_cert}",
                f"tls-key-file {self.tls.server_key}",
                f"tls-ca-cert-file {self.tls.ca_file}",
                f"tls-auth-clients {self.tls_auth_clients}",
                "tls-replication yes",
            ]
            if not self.sentinel:
                lines += [
                    # The nodes' own client side (replication, the Cluster bus).
                    f"tls-client-cert-file {self.tls.client_cert}",
                    f"tls-client-key-file {self.tls.client_key}",
                ]
        else:
            lines.append(f"port {self.port}")
        if not self.sentinel:
            lines += [
                'save ""',
                "appendonly no",
                f"dbfilename {self.name}.rdb",
            ]
        if self.password is not None:
            lines.append(f"requirepass {self.password}")
            if not self.sentinel:
                lines.append(f"masterauth {self.password}")
        lines += [line.format(port=self.port, free_port=free_port()) for line in self.config]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        program = binary("redis-sentinel" if self.sentinel else "redis-server")
        restart = self.port != 0  # a restart keeps its port: clients know it
        for _ in range(5):
            self.port = self.port or free_port()
            conf = self.directory / f"{self.name}.conf"
            conf.write_text(self._conf())
            self.process = subprocess.Popen(
                [program, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.running:
                if self._answers():
                    return
                time.sleep(0.05)
            self.stop(kill=True)
            if restart or "Address already in use" not in self._log_tail():
                break
            self.port = 0  # taken meanwhile by someone else: another port
        raise RuntimeError(f"{self.name} did not start on {self.address}: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def _answers(self) -> bool:
        try:
            with self.client(socket_timeout=1.0) as client:
                return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    def client(self, **overrides: Any) -> redis.Redis:
        """A plain synchronous client of this node, as its administrator."""
        kwargs: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "password": self.password,
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
            "decode_responses": True,
        }
        if self.tls is not None:
            kwargs |= self.tls.client_kwargs()
        return redis.Redis(**(kwargs | overrides))

    @property
    def url(self) -> str:
        """``redis://`` (``rediss://`` with TLS), with the password if it has one."""
        assert self.port, "start() first"
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL, a crash) and wait until it is gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Deployment:
    """Several nodes started together and stopped together."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Cluster(_Deployment):
    """A Redis Cluster: ``primaries`` nodes serving the 16384 slots, each with
    ``replicas`` replicas that take over when it fails (after ``node_timeout_ms``)."""

    def __init__(
        self,
        directory: Path,
        *,
        primaries: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 5000,
        password: str | None = None,
        tls: Tls | None = None,
    ) -> None:
        self.directory = directory
        self.replicas = replicas
        self.password = password
        self.tls = tls
        self.nodes = [
            RedisNode(
                directory / f"node-{i}",
                f"node-{i}",
                password=password,
                tls=tls,
                config=[
                    "cluster-enabled yes",
                    f"cluster-config-file nodes-{i}.conf",
                    f"cluster-node-timeout {node_timeout_ms}",
                    "cluster-port {free_port}",
                ]
                + (["tls-cluster yes"] if tls is not None else []),
            )
            for i in range(primaries * (1 + replicas))
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        command = [binary("redis-cli"), "--cluster", "create"]
        command += [node.address for node in self.nodes]
        command += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        if self.password is not None:
            command += ["-a", self.password, "--no-auth-warning"]
        if self.tls is not None:
            command += ["--tls", "--cacert", str(self.tls.ca_file)]
            command += ["--cert", str(self.tls.client_cert), "--key", str(self.tls.client_key)]
        made = subprocess.run(
            command, capture_output=True, text=True, timeout=SETTLE_TIMEOUT_S, check=False
        )
        if made.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {made.stdout[-2000:]}")
        self.wait_healthy()

    def url(self, *seeds: RedisNode) -> str:
        """``redis+cluster://`` (``rediss+`` with TLS) with the given seeds (default: one)."""
        seeds = seeds or (self.nodes[0],)
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        return f"{scheme}://" + ",".join(node.address for node in seeds)

    def _view(self) -> list[dict[str, Any]]:
        """CLUSTER NODES as one running node sees it (redis-py parses the reply)."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                with node.client() as client:
                    nodes = client.execute_command("CLUSTER NODES")
            except (redis.RedisError, OSError):
                continue
            return [
                {
                    "id": row["node_id"],
                    "port": int(address.split("@")[0].rsplit(":", 1)[1]),
                    "flags": set(row["flags"].split(",")),
                    "primary": row["master_id"],
                    "slots": [(int(r[0]), int(r[-1])) for r in row["slots"]],
                }
                for address, row in nodes.items()
            ]
        raise AssertionError("no node of the cluster answers")

    def _by_port(self, port: int) -> RedisNode:
        return next(node for node in self.nodes if node.port == port)

    def primaries(self) -> list[RedisNode]:
        """The nodes serving slots now."""
        rows = self._view()
        return [
            self._by_port(row["port"])
            for row in rows
            if "master" in row["flags"] and "fail" not in row["flags"] and row["slots"]
        ]

    def replicas_of(self, primary: RedisNode) -> list[RedisNode]:
        rows = self._view()
        ids = {row["port"]: row["id"] for row in rows}
        return [self._by_port(r["port"]) for r in rows if r["primary"] == ids[primary.port]]

    def node_of(self, key: str) -> RedisNode:
        """The primary serving ``key``'s slot now."""
        slot = key_slot(key.encode())
        for row in self._view():
            if "master" not in row["flags"] or "fail" in row["flags"]:
                continue
            if any(low <= slot <= high for low, high in row["slots"]):
                return self._by_port(row["port"])
        raise AssertionError(f"no primary serves slot {slot}")

    def wait_healthy(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Every running node says cluster_state:ok and knows every slot; every replica
        is in sync with its primary."""

        def healthy() -> bool:
            for node in self.nodes:
                if not node.running:
                    continue
                try:
                    with node.client() as client:
                        info = client.execute_command("CLUSTER INFO")
                        replication = client.info("replication")
                except (redis.RedisError, OSError):
                    return False
                if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                    return False
                if replication.get("role") == "slave" and (
                    replication.get("master_link_status") != "up"
                ):
                    return False
            return True

        wait_until(healthy, timeout_s, "the cluster to be healthy")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Sentinels(_Deployment):
    """A primary and a replica watched by three sentinels under ``service``."""

    def __init__(
        self,
        directory: Path,
        *,
        service: str = "mymaster",
        password: str | None = None,
        sentinel_password: str | None = None,
        down_after_ms: int = 2000,
        tls: Tls | None = None,
    ) -> None:
        self.service = service
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        self.primary = RedisNode(directory / "primary", "primary", password=password, tls=tls)
        self.replica = RedisNode(directory / "replica", "replica", password=password, tls=tls)
        self.sentinels: list[RedisNode] = []
        self._directory = directory
        self._down_after_ms = down_after_ms

    def start(self) -> None:
        self.primary.start()
        self.replica.config = [f"replicaof 127.0.0.1 {self.primary.port}"]
        self.replica.start()
        monitor = [
            "sentinel resolve-hostnames no",
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2",
            f"sentinel down-after-milliseconds {self.service} {self._down_after_ms}",
            f"sentinel failover-timeout {self.service} 20000",
            f"sentinel parallel-syncs {self.service} 1",
        ]
        if self.password is not None:
            monitor.append(f"sentinel auth-pass {self.service} {self.password}")
        for i in range(3):
            sentinel = RedisNode(
                self._directory / f"sentinel-{i}",
                f"sentinel-{i}",
                sentinel=True,
                password=self.sentinel_password,
                tls=self.tls,
                config=monitor,
            )
            sentinel.start()
            self.sentinels.append(sentinel)
        self.wait_watched()

    @property
    def url(self) -> str:
        hosts = ",".join(sentinel.address for sentinel in self.sentinels)
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        return f"{scheme}://{hosts}/{self.service}"

    def _masters(self, sentinel: RedisNode) -> dict[str, Any]:
        with sentinel.client() as client:
            state: dict[str, Any] = client.sentinel_master(self.service)
            return state

    def current_primary(self) -> RedisNode:
        """The node the sentinels name as primary now."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            try:
                with sentinel.client() as client:
                    _, port = client.sentinel_get_master_addr_by_name(self.service)
            except (redis.RedisError, OSError):
                continue
            return self.primary if int(port) == self.primary.port else self.replica
        raise AssertionError("no sentinel answers")

    def wait_watched(self, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
        """Every sentinel sees the primary up, its replica and the two other sentinels;
        the replica is in sync."""

        def watched() -> bool:
            try:
                for sentinel in self.sentinels:
                    state = self._masters(sentinel)
                    if state["is_sdown"] or state["num-slaves"] < 1:
                        return False
                    if state["num-other-sentinels"] < len(self.sentinels) - 1:
                        return False
                replica = self.replica if self.current_primary() is self.primary else self.primary
                if not replica.running:
                    return True
                with replica.client() as client:
                    return bool(client.info("replication").get("master_link_status") == "up")
            except (redis.RedisError, OSError, KeyError):
                return False

        wait_until(watched, timeout_s, "the sentinels to watch the primary and its replica")

    def stop(self) -> None:
        for node in (*self.sentinels, self.replica, self.primary):
            node.stop()
