"""Which upstream a call goes to, and where it goes next when that one refuses.

Per call (:meth:`Router.send`):

    candidates  the upstreams that serve the call's model (their ``models``, or an
                Azure upstream's deployments), that the client's policy allows
                (``upstreams`` in the clients file), and that take the request
                (Azure: no WebP, no variations): none serves the model -> NOT_FOUND,
                none the client may use -> PERMISSION_DENIED, none takes it ->
                INVALID_ARGUMENT naming the field; nothing is sent
    order       by priority (lower first), then a weighted random order within each
                priority (the first pick is upstream i with probability w_i / sum w)
    each        skipped while its circuit is open (:mod:`.breaker`) or while a
                ceiling of its own refuses the call (:meth:`Limiter.take_upstream`);
                else sent to. A failure proven to have generated nothing
                (``generated_nothing``: no connection, 429, ``x-should-retry: true``,
                5xx before the body was all sent) moves the call to the next one;
                any other failure (a read timeout, a broken answer, a 5xx after the
                body was sent) is the call's, since it may have billed. The last
                upstream in the order is retried as a single upstream is (connect
                errors, 429, ``x-should-retry``, with backoff); the others are not,
                since the next one is a better bet than a wait.
    nothing     every candidate at a ceiling -> RESOURCE_EXHAUSTED (``upstream_ceiling``,
                RetryInfo: the soonest one frees); every circuit open -> UNAVAILABLE

Without an upstreams file, the single upstream of ``IMAGEGATE_OPENAI_*`` (``default``)
is the only route, with no breaker and no ceilings: calls go exactly as before there
were routes (a client pinned to other upstreams is refused: it may use none here).

Picking and ordering the candidates, and the refusals, are :mod:`.candidates`';
how a call's ending counts for an upstream's circuit is :mod:`.verdicts`'.

A new version of the upstreams file (:meth:`apply`) keeps the breaker of every
upstream whose configuration did not change; calls already sent to one removed or
changed finish there. Every upstream's connections are in one pool of the process
(``IMAGEGATE_MAX_CONNECTIONS`` in all, keyed by host), so nothing needs closing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from imagegate_server.errors import UpstreamFailure
from imagegate_server.limits import Limiter
from imagegate_server.pricing import PriceTable
from imagegate_server.routing.breaker import BreakerPolicy, CircuitBreaker, State
from imagegate_server.routing.candidates import candidates, not_allowed, nothing_left, order
from imagegate_server.routing.upstreams_file import UpstreamSet, UpstreamSpec
from imagegate_server.routing.verdicts import failover_cause, judge
from imagegate_server.upstream import ImageSink, ImagesRequest, Pool, Reply, Upstream
from imagegate_server.upstream.observe import UpstreamObserver, UpstreamTracer

log = logging.getLogger(__name__)


class RouterObserver(UpstreamObserver, Protocol):
    """What the router tells metrics, beyond each upstream's own attempts."""

    def known_upstreams(self, names: Sequence[str]) -> None: ...

    def upstream_failover(self, upstream: str, cause: str) -> None: ...

    def upstream_ceiling_skip(self, upstream: str) -> None: ...

    def set_circuit_open(self, upstream: str, is_open: bool) -> None: ...


@dataclass
class Route:
    spec: UpstreamSpec
    upstream: Upstream
    breaker: CircuitBreaker | None

    @property
    def name(self) -> str:
        return self.spec.name


class Router:
    """Routes every call of one gateway process over its upstreams."""

    def __init__(
        self,
        upstreams: UpstreamSet,
        limiter: Limiter,
        prices: PriceTable,
        observer: RouterObserver,
        *,
        tracer: UpstreamTracer | None = None,
        breaker: BreakerPolicy | None = None,
        pool: Pool | None = None,
    ) -> None:
        """``pool``: the connections every upstream shares (closed with the router), so
        that ``IMAGEGATE_MAX_CONNECTIONS`` bounds them all together; None: each
        upstream has a pool of its own (tests)."""
        self._pool = pool
        self._limiter = limiter
        self._prices = prices
        self._observer = observer
        self._tracer = tracer
        self._breaker = breaker or BreakerPolicy()
        self._routes: tuple[Route, ...] = ()
        self._by_name: dict[str, Route] = {}
        self._from_file = upstreams.from_file
        self.apply(upstreams)

    @property
    def from_file(self) -> bool:
        """Whether the routes come from an upstreams file (else: the one default)."""
        return self._from_file

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    def prices_for(self, upstream: str | None) -> PriceTable:
        """The price table of calls ``upstream`` answered: its own, or the gateway's."""
        route = self._by_name.get(upstream) if upstream is not None else None
        if route is None or route.spec.prices is None:
            return self._prices
        return route.spec.prices

    # -- versions of the upstreams file ------------------------------------------------

    def apply(self, upstreams: UpstreamSet) -> None:
        """Route over ``upstreams`` from now on (calls already sent are not moved)."""
        kept = {route.name: route for route in self._routes}
        routes = []
        for spec in upstreams.upstreams:
            old = kept.pop(spec.name, None)
            if old is not None and old.spec.config == spec.config:
                old.spec = spec  # same endpoint and key: same connections, same breaker
                routes.append(old)
                continue
            # New or changed: calls still using the old one finish on it (the pool is
            # shared, so nothing of it needs closing).
            routes.append(Route(spec, self._upstream(spec), self._new_breaker(spec.name)))
        self._routes = tuple(routes)
        self._by_name = {route.name: route for route in routes}
        self._observer.known_upstreams([route.name for route in routes])
        for route in routes:
            if route.breaker is not None:
                self._observer.set_circuit_open(route.name, route.breaker.state is not State.CLOSED)

    def _upstream(self, spec: UpstreamSpec) -> Upstream:
        return Upstream(spec.config, observer=self._observer, tracer=self._tracer, pool=self._pool)

    def _new_breaker(self, name: str) -> CircuitBreaker | None:
        if not self._from_file:
            return None  # the single upstream of the settings: calls go as they always did

        def changed(state: State) -> None:
            self._observer.set_circuit_open(name, state is not State.CLOSED)
            if state is State.OPEN:
                log.warning(
                    "upstream circuit opened: no calls to it for %.0f s", self._breaker.open_s,
                    extra={"upstream": name, "failures": self._breaker.failures},
                )  # fmt: skip
            elif state is State.CLOSED:
                log.info("upstream circuit closed", extra={"upstream": name})

        return CircuitBreaker(self._breaker, on_change=changed)

    async def aclose(self) -> None:
        routes, self._routes, self._by_name = self._routes, (), {}
        for route in routes:
            await route.upstream.aclose()
        if self._pool is not None:
            await self._pool.aclose()

    # -- calls -------------------------------------------------------------------------

    @asynccontextmanager
    async def send(
        self,
        request: ImagesRequest,
        deadline: float,
        allowed: tuple[str, ...] | None,
        on_attempt: Callable[[str], None],
        sink: ImageSink | None = None,
    ) -> AsyncIterator[Reply]:
        """Send ``request`` to the upstream the rules above pick; yield its reply.

        ``allowed``: the upstreams the client's policy names (None: any);
        ``on_attempt`` hears the name of each upstream as the call goes to it;
        ``sink``: where a whole answer's images go as they are decoded (see
        :meth:`Upstream.send`: a failover happens only before an answer, so the
        sink sees the images of one upstream's answer at most).
        Raises what :meth:`Upstream.send` raises, or the refusals above.
        """
        routes = self._routes
        if not self._from_file:
            (route,) = routes
            if allowed is not None and route.name not in allowed:
                raise not_allowed(request)  # pinned to upstreams this gateway lacks
            on_attempt(route.name)
            async with route.upstream.send(request, deadline, sink) as reply:
                yield reply
            return
        ordered = order(candidates(routes, request, allowed))
        n = request.params.get("n", 1)
        cost = n if isinstance(n, int) and n > 0 else 1
        waits: list[float] = []
        failure: UpstreamFailure | None = None
        for position, route in enumerate(ordered):
            assert route.breaker is not None
            permit = route.breaker.allow()
            if permit is None:
                continue
            try:
                wait = await self._ceilings(route, cost)
            except BaseException:
                route.breaker.release(permit)
                raise
            if wait > 0:
                route.breaker.release(permit)
                waits.append(wait)
                self._observer.upstream_ceiling_skip(route.name)
                continue
            on_attempt(route.name)
            last = position == len(ordered) - 1
            try:
                async with AsyncExitStack() as stack:
                    try:
                        reply = await stack.enter_async_context(
                            route.upstream.send(request, deadline, sink, retry=last)
                        )
                    except UpstreamFailure as failed:
                        judge(route.breaker, permit, failed)
                        if last or not failed.generated_nothing:
                            raise
                        self._observer.upstream_failover(route.name, failover_cause(failed))
                        failure = failed
                        continue
                    try:
                        yield reply
                    except BaseException as exc:
                        judge(route.breaker, permit, exc)
                        raise
                    route.breaker.succeeded(permit)
                    return
            except BaseException as exc:
                if not isinstance(exc, UpstreamFailure):
                    route.breaker.release(permit)
                raise
        if failure is not None:
            raise failure
        raise nothing_left(request, ordered, waits)

    async def _ceilings(self, route: Route, cost: int) -> float:
        rates = route.spec.ceilings(cost)
        if not rates:
            return 0.0
        return await self._limiter.take_upstream(route.name, rates)
