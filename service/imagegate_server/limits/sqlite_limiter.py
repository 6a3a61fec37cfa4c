"""The local limiter: limits and spend in the gateway's SQLite database.

The default without Redis. Every worker process of one ``serve`` opens the same
database (:mod:`imagegate_server.localdb`), so N workers enforce one set of limits,
and a restart forgets nothing: not the day's spend, not the minute's rates, not
the calls in flight (whose slots expire after their hold, as if their process had
died). Each operation is one short transaction that takes the write lock first,
so an admission reads and charges every limit of the call, the gateway-wide
ceiling included, all or none (no two-step gap as with Redis). The tables and
their SQL are :mod:`.sqlite_tables`'; this module runs them and handles outages.

Time is the wall clock (persisted state outlives processes, and a monotonic clock
is per boot): TATs and expiries are microseconds since 1970. A clock stepped back
makes waits longer, never shorter; one stepped forward frees rates and slots early
by the step.

A call with no limit at all (no rate, no concurrency limit, no budget) is admitted
without a transaction and holds no row; settling it books its cost, so its spend is
still counted, but it is not among the calls in flight. Once a minute a process
deletes what is stale.

A database error (disk full, I/O error, a write lock held past the busy timeout)
is handled like a Redis outage: :class:`OutagePolicy` decides per kind of limit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Future

from imagegate_server.limits import sqlite_tables as tables
from imagegate_server.limits.base import Clock, SystemClock
from imagegate_server.limits.decision import client_status
from imagegate_server.limits.model import (
    MAX_SPEND_LISTING,
    Admission,
    Budget,
    ClientStatus,
    RateLimit,
    SpendListing,
    Ticket,
    UpstreamSpend,
    UpstreamStatus,
    new_ticket_id,
)
from imagegate_server.limits.outage import OutagePolicy, StoreHealth, StoreState
from imagegate_server.localdb import LocalDatabase

_GC_EVERY_US = 60_000_000
# Errors that mean the database cannot be used now (sqlite3.Error covers locked,
# full, I/O and corrupt), as opposed to a bug of ours.
_STORE_ERRORS = (sqlite3.Error, OSError)


class SqliteLimiter:
    """:class:`~imagegate_server.limits.Limiter` on the local database."""

    backend = "local"

    def __init__(
        self,
        database: LocalDatabase,
        *,
        clock: Clock | None = None,
        policy: OutagePolicy | None = None,
    ) -> None:
        self._db = database
        self._clock: Clock = clock or SystemClock()
        self._health = StoreHealth("local", str(database.path), policy or OutagePolicy())
        self._next_gc = 0

    @property
    def state(self) -> StoreState:
        return self._health.state

    def _now(self) -> tuple[int, float]:
        """``(now_us, unix)``: read on the database's thread, inside the transaction."""
        unix = self._clock.unix_s()
        return round(unix * 1_000_000), unix

    async def admit(self, admission: Admission) -> Ticket:
        if admission.checks_nothing:  # no transaction; settle books the cost
            return Ticket(new_ticket_id(admission), admission.client, 0, accounted=False)
        started_up = self._health.usable
        if self._health.skip():
            return self._health.uncounted(admission)
        ticket = Ticket(
            new_ticket_id(admission), admission.client, admission.reserve_micros, accounted=True
        )
        future = self._db.submit_write(
            lambda db: tables.admit(db, admission, ticket.id, *self._now())
        )
        try:
            await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            # The transaction runs to its end on the database's thread: if it admitted
            # the call, give the slot and reservation back rather than hold them
            # until they expire.
            future.add_done_callback(lambda done: self._release_abandoned(done, ticket))
            raise
        except _STORE_ERRORS as error:
            self._health.down(error)
            return self._health.uncounted(admission)
        self._health.up(started_up)
        self._collect()
        if admission.replaces is not None:
            admission.replaces._settled.claim()  # the transaction freed it with this one
        return ticket

    async def settle(self, ticket: Ticket, cost_micros: int, upstream: str | None = None) -> None:
        if cost_micros < 0:
            raise ValueError("cost_micros must be >= 0")
        if not ticket._settled.claim():
            return
        if not ticket.accounted and cost_micros == 0:
            return  # let through uncounted: nothing to free
        started_up = self._health.usable
        if self._health.skip():
            return
        try:
            await self._db.write(
                lambda db: tables.settle(db, ticket, cost_micros, upstream, self._clock.unix_s())
            )
        except _STORE_ERRORS as error:
            self._health.down(error)  # the slot and reservation expire on their own
            return
        self._health.up(started_up)

    async def take_upstream(self, upstream: str, rates: Sequence[RateLimit]) -> float:
        return await self._health.charge(
            lambda: self._db.write(
                lambda db: tables.take_upstream(db, upstream, rates, self._now()[0])
            ),
            _STORE_ERRORS,
            self._health.uncounted_ceiling,
        )

    async def upstream_status(self, upstream: str, rates: Sequence[RateLimit]) -> UpstreamStatus:
        def read(db: sqlite3.Connection) -> UpstreamStatus:
            return tables.upstream_status(db, upstream, rates, *self._now())

        return await self._health.read("upstreams", lambda: self._db.read(read), _STORE_ERRORS)

    async def client_upstream_spend(self, client: str) -> tuple[UpstreamSpend, ...]:
        def read(db: sqlite3.Connection) -> tuple[UpstreamSpend, ...]:
            return tables.client_upstream_spend(db, client, self._clock.unix_s())

        return await self._health.read("spend", lambda: self._db.read(read), _STORE_ERRORS)

    async def status(
        self,
        client: str,
        rates: Sequence[RateLimit],
        max_concurrent: int | None,
        budgets: Sequence[Budget],
    ) -> ClientStatus:
        def read(db: sqlite3.Connection) -> ClientStatus:
            now_us, unix = self._now()
            standing = tables.standing(db, client, rates, now_us, unix)
            return client_status(client, rates, max_concurrent, budgets, standing, now_us, unix)

        return await self._health.read("status", lambda: self._db.read(read), _STORE_ERRORS)

    async def list_spend(self, limit: int = MAX_SPEND_LISTING) -> SpendListing:
        def read(db: sqlite3.Connection) -> SpendListing:
            return tables.read_spend(db, self._clock.unix_s(), limit)

        return await self._health.read("spend", lambda: self._db.read(read), _STORE_ERRORS)

    async def aclose(self) -> None:
        """Nothing to close: the database belongs to whoever opened it (the gateway),
        which closes it after the limiter, once the settles before it have run."""

    def _release_abandoned(self, done: Future[None], ticket: Ticket) -> None:
        if done.cancelled() or done.exception() is not None or not ticket._settled.claim():
            return
        # On the database's thread, after the admission: no await, no loop needed.
        self._db.submit_write(lambda db: tables.settle(db, ticket, 0, None, self._clock.unix_s()))

    def _collect(self) -> None:
        """Delete drained rates, expired calls and past periods (once a minute)."""
        now_us, unix = self._now()
        if now_us < self._next_gc:
            return
        self._next_gc = now_us + _GC_EVERY_US
        self._db.submit_write(lambda db: tables.delete_stale(db, now_us, unix))
