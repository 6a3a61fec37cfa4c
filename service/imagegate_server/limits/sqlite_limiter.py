"""The local limiter: limits and spend in the gateway's SQLite database.

The default without Redis. Every worker process of one ``serve`` opens the same
database (:mod:`imagegate_server.localdb`), so N workers enforce one set of limits,
and a restart forgets nothing: not the day's spend, not the minute's rates, not
the calls in flight (whose slots expire after their hold, as if their process had
died). Each operation is one short transaction that takes the write lock first,
so an admission reads and charges every limit of the call, the gateway-wide
ceiling included, all or none (no two-step gap as with Redis).

Time is the wall clock (persisted state outlives processes, and a monotonic clock
is per boot): TATs and expiries are microseconds since 1970. A clock stepped back
makes waits longer, never shorter; one stepped forward frees rates and slots early
by the step.

Tables (schema ``limits``, version 2)
    ``limit_rates``   (scope, name) -> TAT; scope is the client, '' for the
                      gateway-wide ceiling, or ``upstream:<name>`` for an upstream's
                      ceilings (:mod:`.ceilings`); a row is deleted once drained.
    ``limit_calls``   ticket -> client, expiry, reserved micro-dollars: the admitted
                      calls in flight; expired ones are deleted (their reservation
                      with them) before the client's next admission.
    ``limit_spend``   (client, 'day'|'month') -> period number, micro-dollars: the
                      current UTC day's and month's settled spend; older periods
                      are deleted.
    ``limit_upstream_spend``  (upstream, 'day'|'month') -> the same, per upstream
                      (step 2), booked in the settle's transaction.
A call with no limit at all (no rate, no concurrency limit, no budget) is admitted
without a transaction and holds no row; settling it books its cost, so its spend is
still counted, but it is not among the calls in flight. Rows are bounded: calls by
the calls in flight, rates and spend by the clients
active this minute and this month. Once a minute a process deletes what is stale.

A database error (disk full, I/O error, a write lock held past the busy timeout)
is handled like a Redis outage: :class:`OutagePolicy` decides per kind of limit.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime

from imagegate_server.limits import ceilings
from imagegate_server.limits.base import Clock, SystemClock
from imagegate_server.limits.decision import Standing, client_status, decide
from imagegate_server.limits.model import (
    MAX_SPEND_LISTING,
    Admission,
    Budget,
    ClientSpend,
    ClientStatus,
    RateLimit,
    SpendListing,
    Ticket,
    UpstreamStatus,
    new_ticket_id,
)
from imagegate_server.limits.outage import OutagePolicy, StoreHealth, StoreState
from imagegate_server.limits.periods import period_number
from imagegate_server.localdb import LocalDatabase, Schema

SCHEMA = Schema(
    "limits",
    (
        """
        CREATE TABLE limit_rates (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            tat_us INTEGER NOT NULL,
            PRIMARY KEY (scope, name)
        ) WITHOUT ROWID;
        CREATE TABLE limit_calls (
            ticket TEXT PRIMARY KEY,
            client TEXT NOT NULL,
            expires_us INTEGER NOT NULL,
            reserved_micros INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX limit_calls_by_client ON limit_calls (client, expires_us);
        CREATE INDEX limit_calls_by_expiry ON limit_calls (expires_us);
        CREATE TABLE limit_spend (
            client TEXT NOT NULL,
            period TEXT NOT NULL,
            number INTEGER NOT NULL,
            micros INTEGER NOT NULL,
            PRIMARY KEY (client, period)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE limit_upstream_spend (
            upstream TEXT NOT NULL,
            period TEXT NOT NULL,
            number INTEGER NOT NULL,
            micros INTEGER NOT NULL,
            PRIMARY KEY (upstream, period)
        ) WITHOUT ROWID
        """,
    ),
)

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
        unix = self._clock.unix_s()
        return round(unix * 1_000_000), unix

    # The interface --------------------------------------------------------------------

    async def admit(self, admission: Admission) -> Ticket:
        if not (admission.rates or admission.budgets or admission.max_concurrent is not None):
            # Nothing to check or hold: skip the transaction; settle books the cost.
            return Ticket(secrets.token_hex(10), admission.client, 0, accounted=False)
        started_up = self._health.usable
        if self._health.skip():
            return self._health.uncounted(admission)
        ticket = Ticket(
            new_ticket_id(admission), admission.client, admission.reserve_micros, accounted=True
        )
        future = self._db.submit_write(lambda db: self._admit(db, admission, ticket.id))
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
            await self._db.write(lambda db: self._settle(db, ticket, cost_micros, upstream))
        except _STORE_ERRORS as error:
            self._health.down(error)  # the slot and reservation expire on their own
            return
        self._health.up(started_up)

    async def take_upstream(self, upstream: str, rates: Sequence[RateLimit]) -> float:
        return await self._health.charge(
            lambda: self._db.write(lambda db: self._take_upstream(db, upstream, rates)),
            _STORE_ERRORS,
            self._health.uncounted_ceiling,
        )

    async def upstream_status(self, upstream: str, rates: Sequence[RateLimit]) -> UpstreamStatus:
        def read(db: sqlite3.Connection) -> UpstreamStatus:
            now_us, unix = self._now()
            tats = _upstream_tats(db, upstream, rates)
            spent = _spent(db, upstream, unix, "limit_upstream_spend", "upstream")
            return UpstreamStatus(
                upstream, ceilings.rate_status(rates, tats, now_us), spent["day"], spent["month"]
            )

        return await self._health.read("upstreams", lambda: self._db.read(read), _STORE_ERRORS)

    async def status(
        self,
        client: str,
        rates: Sequence[RateLimit],
        max_concurrent: int | None,
        budgets: Sequence[Budget],
    ) -> ClientStatus:
        def read(db: sqlite3.Connection) -> ClientStatus:
            now_us, unix = self._now()
            standing = self._standing(db, client, rates, now_us, unix)
            return client_status(client, rates, max_concurrent, budgets, standing, now_us, unix)

        return await self._health.read("status", lambda: self._db.read(read), _STORE_ERRORS)

    async def list_spend(self, limit: int = MAX_SPEND_LISTING) -> SpendListing:
        def read(db: sqlite3.Connection) -> SpendListing:
            return read_spend(db, self._clock.unix_s(), limit)

        return await self._health.read("spend", lambda: self._db.read(read), _STORE_ERRORS)

    async def aclose(self) -> None:
        """Nothing to close: the database belongs to whoever opened it (the gateway),
        which closes it after the limiter, once the settles before it have run."""

    # On the database's thread ---------------------------------------------------------

    def _admit(self, db: sqlite3.Connection, admission: Admission, ticket: str) -> None:
        client = admission.client
        now_us, unix = self._now()
        db.execute("DELETE FROM limit_calls WHERE client = ? AND expires_us <= ?", (client, now_us))
        standing = self._standing(db, client, admission.rates, now_us, unix)
        replaced = admission.replaces.id if admission.replaces is not None else None
        held = (
            replaced
            and db.execute(
                "SELECT reserved_micros FROM limit_calls WHERE ticket = ? AND client = ?",
                (replaced, client),
            ).fetchone()
        )
        if held:
            standing = standing.without_call(int(held[0]))  # the ticket this one takes over
        charges = decide(admission, standing, now_us, unix)  # raises LimitRefused
        if held:
            db.execute("DELETE FROM limit_calls WHERE ticket = ?", (replaced,))
        db.executemany(
            "INSERT INTO limit_rates (scope, name, tat_us) VALUES (?, ?, ?) "
            "ON CONFLICT (scope, name) DO UPDATE SET tat_us = excluded.tat_us",
            [(rate.scope, rate.name, tat) for rate, tat in charges],
        )
        db.execute(
            "INSERT INTO limit_calls (ticket, client, expires_us, reserved_micros) "
            "VALUES (?, ?, ?, ?)",
            (ticket, client, now_us + admission.hold_us, admission.reserve_micros),
        )

    def _settle(
        self, db: sqlite3.Connection, ticket: Ticket, cost: int, upstream: str | None
    ) -> None:
        db.execute("DELETE FROM limit_calls WHERE ticket = ?", (ticket.id,))
        if not cost:
            return
        # A late settle (after its reservation expired) still counts: the bill is real.
        unix = self._clock.unix_s()
        _add_spend(db, "limit_spend", "client", ticket.client, cost, unix)
        if upstream is not None:
            _add_spend(db, "limit_upstream_spend", "upstream", upstream, cost, unix)

    def _take_upstream(
        self, db: sqlite3.Connection, upstream: str, rates: Sequence[RateLimit]
    ) -> float:
        now_us, _ = self._now()
        tats = {
            name: tat
            for name, tat in _upstream_tats(db, upstream, rates).items()
            if tat is not None
        }
        wait, charges = ceilings.check(rates, tats, now_us)
        db.executemany(
            "INSERT INTO limit_rates (scope, name, tat_us) VALUES (?, ?, ?) "
            "ON CONFLICT (scope, name) DO UPDATE SET tat_us = excluded.tat_us",
            [(ceilings.SQLITE_SCOPE + upstream, rate.name, tat) for rate, tat in charges],
        )
        return wait

    @staticmethod
    def _standing(
        db: sqlite3.Connection, client: str, rates: Sequence[RateLimit], now_us: int, unix: float
    ) -> Standing:
        tats = {}
        for rate in rates:
            row = db.execute(
                "SELECT tat_us FROM limit_rates WHERE scope = ? AND name = ?",
                (rate.scope, rate.name),
            ).fetchone()
            if row is not None:
                tats[rate.name] = int(row[0])
        # Reservations without a slot (RESERVATION_PREFIX) hold budget, not concurrency.
        in_use, reserved = db.execute(
            "SELECT count(*) FILTER (WHERE ticket NOT LIKE 'r-%'), "
            "coalesce(sum(reserved_micros), 0) FROM limit_calls "
            "WHERE client = ? AND expires_us > ?",
            (client, now_us),
        ).fetchone()
        spent = _spent(db, client, unix)
        return Standing(tats, int(in_use), spent["day"], spent["month"], int(reserved))

    def _release_abandoned(self, done: Future[None], ticket: Ticket) -> None:
        if done.cancelled() or done.exception() is not None or not ticket._settled.claim():
            return
        # On the database's thread, after the admission: no await, no loop needed.
        self._db.submit_write(lambda db: self._settle(db, ticket, 0, None))

    def _collect(self) -> None:
        """Delete drained rates, expired calls and past periods (once a minute)."""
        now_us, unix = self._now()
        if now_us < self._next_gc:
            return
        self._next_gc = now_us + _GC_EVERY_US
        self._db.submit_write(lambda db: _delete_stale(db, now_us, unix))


def _spent(
    db: sqlite3.Connection,
    owner: str,
    unix: float,
    table: str = "limit_spend",
    column: str = "client",
) -> dict[str, int]:
    """The current day's and month's spend of a client (or, in ``limit_upstream_spend``,
    of an upstream)."""
    spent = {"day": 0, "month": 0}
    for period, number, micros in db.execute(
        f"SELECT period, number, micros FROM {table} WHERE {column} = ?",  # noqa: S608 (ours)
        (owner,),
    ):
        if period in spent and number == period_number(period, unix):
            spent[period] = int(micros)
    return spent


def _add_spend(
    db: sqlite3.Connection, table: str, column: str, owner: str, cost: int, unix: float
) -> None:
    db.executemany(
        f"INSERT INTO {table} ({column}, period, number, micros) VALUES (?, ?, ?, ?) "  # noqa: S608
        f"ON CONFLICT ({column}, period) DO UPDATE SET "
        "micros = CASE WHEN number = excluded.number THEN micros + excluded.micros "
        "ELSE excluded.micros END, number = excluded.number",
        [(owner, p, period_number(p, unix), cost) for p in ("day", "month")],
    )


def _upstream_tats(
    db: sqlite3.Connection, upstream: str, rates: Sequence[RateLimit]
) -> dict[str, int | None]:
    scope = ceilings.SQLITE_SCOPE + upstream
    tats: dict[str, int | None] = {}
    for rate in rates:
        row = db.execute(
            "SELECT tat_us FROM limit_rates WHERE scope = ? AND name = ?", (scope, rate.name)
        ).fetchone()
        tats[rate.name] = int(row[0]) if row is not None else None
    return tats


def _delete_stale(db: sqlite3.Connection, now_us: int, unix: float) -> None:
    db.execute("DELETE FROM limit_rates WHERE tat_us <= ?", (now_us,))
    db.execute("DELETE FROM limit_calls WHERE expires_us <= ?", (now_us,))
    for table in ("limit_spend", "limit_upstream_spend"):
        db.execute(
            f"DELETE FROM {table} WHERE (period = 'day' AND number < ?) "  # noqa: S608 (ours)
            "OR (period = 'month' AND number < ?)",
            (period_number("day", unix), period_number("month", unix)),
        )


def read_spend(db: sqlite3.Connection, unix: float, limit: int) -> SpendListing:
    """Every client's spend this day and month and calls in flight, from the tables
    above (also what ``imagegate clients spend`` reads on the host)."""
    now_us = round(unix * 1_000_000)
    day, month = period_number("day", unix), period_number("month", unix)
    figures: dict[str, list[int]] = {}
    for client, period, micros in db.execute(
        "SELECT client, period, micros FROM limit_spend "
        "WHERE (period = 'day' AND number = ?) OR (period = 'month' AND number = ?)",
        (day, month),
    ):
        entry = figures.setdefault(client, [0, 0, 0, 0])
        entry[0 if period == "day" else 1] = int(micros)
    for client, count, reserved in db.execute(
        "SELECT client, count(*), coalesce(sum(reserved_micros), 0) FROM limit_calls "
        "WHERE expires_us > ? GROUP BY client",
        (now_us,),
    ):
        entry = figures.setdefault(client, [0, 0, 0, 0])
        entry[2], entry[3] = int(reserved), int(count)
    names = sorted(name for name, entry in figures.items() if entry[1] or entry[3])
    listed = tuple(ClientSpend(name, *figures[name]) for name in names[:limit])
    return SpendListing(listed, len(names) > limit, datetime.fromtimestamp(unix, UTC))
