"""One Redis deployment as the gateway uses it: scripts, scans and single commands,
each bounded in time and in connections, each failure explained.

Every command waits for one of ``max_connections`` permits (local congestion: up to
:data:`PERMIT_WAIT_S` or the timeout, whichever is longer), then has ``timeout_s``
in all: connecting, redis-py's retry, a Cluster's redirections and topology
refresh, a Sentinel lookup. Past it, or on any error, it raises
:class:`~.failures.StoreFailure`. A plain URL that turns out to name a Cluster node
(Redis answered MOVED) stays refused from then on: serving the clients whose slots
happen to live on that node, and failing the others, would hide the mistake.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import NoScriptError

from imagegate_server.redis_connection import clients, urls
from imagegate_server.redis_connection.failures import ERRORS, StoreFailure, classify
from imagegate_server.redis_connection.keys import Key, one_slot

T = TypeVar("T")
PERMIT_WAIT_S = 5.0
Args = Sequence[str | int]
Page = tuple[int, list[str]]


@dataclass(frozen=True)
class Script:
    """A Lua script, run by its SHA1 (EVALSHA) and sent whole (EVAL) to a server
    that does not have it yet: a restarted one, a promoted replica, a Cluster node.
    EVAL goes to the node of the script's keys, so one down node elsewhere in a
    Cluster cannot stop it (redis-py's own reload, SCRIPT LOAD, goes to every primary)."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324 (Redis names scripts by SHA1)


class RedisConnection:
    """A client of one deployment (``shape``: single, cluster or sentinel)."""

    def __init__(
        self,
        client: clients.Client,
        *,
        shape: urls.Shape = "single",
        tls: bool = False,
        location: str = "redis",
        timeout_s: float = 0.5,
        max_connections: int = 64,
        sentinels: Sentinel | None = None,
    ) -> None:
        self.client = client
        """redis-py's client, for tests and tools; the gateway goes through the methods."""
        self.shape = shape
        self.tls = tls
        self.location = location
        """Where it is, for log lines: no credentials."""
        self.timeout_s = timeout_s
        self._sentinels = sentinels
        self._max_connections = max_connections
        self._permits = asyncio.Semaphore(max_connections)
        self._misdirected: StoreFailure | None = None

    @classmethod
    def from_url(cls, url: str, options: clients.RedisOptions | None = None) -> RedisConnection:
        """A connection to the deployment ``url`` names (connects on first use).

        Raises :class:`~.urls.RedisUrlError` (never quoting the URL) for a URL or
        options that cannot work together."""
        options = options or clients.RedisOptions()
        target = urls.parse(url)
        client, sentinels = clients.build(target, options)
        return cls(
            client,
            shape=target.shape,
            tls=target.tls,
            location=target.location,
            timeout_s=options.timeout_s,
            max_connections=options.max_connections,
            sentinels=sentinels,
        )

    # Commands -----------------------------------------------------------------------

    async def run(self, script: Script, keys: Sequence[Key], args: Args) -> Any:
        """The script's reply; all ``keys`` must share one hash slot (ValueError)."""
        one_slot(keys)
        return await self.call(lambda client: _evaluate(client, script, keys, args))

    async def run_many(
        self, script: Script, calls: Sequence[tuple[Sequence[Key], Args]]
    ) -> list[Any]:
        """The replies of the script run once per (keys, args), pipelined (on a Cluster,
        one pipeline per node): one bounded round trip for all of them."""
        for keys, _ in calls:
            one_slot(keys)

        async def pipelined(client: clients.Client) -> list[Any]:
            replies = await _pipeline(client, "EVALSHA", script.sha, calls)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:  # a node without the script: sent whole, once per call there
                again = await _pipeline(client, "EVAL", script.source, [calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies

        return await self.call(pipelined)

    async def scan(self, match: str, count: int = 1000) -> AsyncGenerator[str, None]:
        """Every key matching ``match``, from every primary of a Cluster; each SCAN round
        trip bounded. Keys written meanwhile may or may not be seen (SCAN's promise)."""
        if isinstance(self.client, RedisCluster):
            cluster = self.client
            await self.call(lambda _: cluster.initialize())
            nodes: list[Any] = cluster.get_primaries()
        else:
            nodes = [None]
        for node in nodes:
            cursor = 0
            while True:

                async def page(client: clients.Client, at: int = cursor, on: Any = node) -> Page:
                    return await _scan(client, at, on, match, count)

                cursor, keys = await self.call(page)
                for key in keys:
                    yield key
                if cursor == 0:
                    break

    async def server_time_s(self) -> int:
        """Redis's clock (TIME), in whole seconds."""
        seconds, _ = await self.call(lambda client: client.time())
        return int(seconds)

    async def call(self, work: Callable[[clients.Client], Awaitable[T]]) -> T:
        """``await work(client)`` within the bounds, failures as :class:`StoreFailure`.
        For commands on one key; a command on several keys belongs in a script (:meth:`run`)."""
        if self._misdirected is not None:
            raise self._misdirected
        try:
            if self._permits.locked():  # all in use: wait, bounded
                async with asyncio.timeout(max(PERMIT_WAIT_S, self.timeout_s)):
                    await self._permits.acquire()
            else:
                await self._permits.acquire()  # at once
        except TimeoutError:
            raise StoreFailure(
                "unreachable",
                "BUSY",
                f"all {self._max_connections} connections stayed busy for "
                f"{max(PERMIT_WAIT_S, self.timeout_s):g} s (IMAGEGATE_REDIS_MAX_CONNECTIONS)",
            ) from None
        try:
            async with asyncio.timeout(self.timeout_s):
                return await work(self.client)
        except ERRORS as error:
            cluster = self.shape == "cluster"
            failure = classify(error, timeout_s=self.timeout_s, cluster=cluster, tls=self.tls)
            if failure.code == "MOVED":
                self._misdirected = failure
            raise failure from None
        finally:
            self._permits.release()

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._sentinels is not None:
            await self._sentinels.aclose()


async def _evaluate(client: clients.Client, script: Script, keys: Sequence[Key], args: Args) -> Any:
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.eval(script.source, len(keys), *keys, *args)


async def _pipeline(
    client: clients.Client, command: str, script: str, calls: Sequence[tuple[Sequence[Key], Args]]
) -> list[Any]:
    # A Cluster's pipeline is never a transaction (and refuses the argument); it sends
    # each node its share. Its evalsha() method is blocked (redis-py cannot reload a
    # script inside a pipeline): the command itself is fine, NOSCRIPT is handled above.
    pipe = client.pipeline() if isinstance(client, RedisCluster) else client.pipeline(False)
    for keys, args in calls:
        pipe.execute_command(command, script, len(keys), *keys, *args)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies


async def _scan(client: clients.Client, cursor: int, node: Any, match: str, count: int) -> Page:
    # decode_responses: the keys are str. A Cluster answers {node name: cursor}.
    if node is None:
        found, keys = await client.scan(cursor, match=match, count=count)
        return int(found), [str(key) for key in keys]
    reply: Any = await client.scan(cursor, match=match, count=count, target_nodes=node)
    cursors, keys = reply
    return int(cursors[node.name]), [str(key) for key in keys]
