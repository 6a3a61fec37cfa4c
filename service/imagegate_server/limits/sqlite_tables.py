"""The local limiter's tables and the SQL that reads and writes them, one function
per transaction, run on the database's thread (:class:`.sqlite_limiter.SqliteLimiter`
submits them).

Times are microseconds since 1970 (``now_us``) and seconds (``unix``, for the UTC
day and month), read by the caller inside the transaction.

Tables (schema ``limits``, version 3)
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
    ``limit_client_upstream_spend``  (client, upstream, 'day'|'month') -> the
                      same, per client and upstream that answered it (step 3), booked
                      in the settle's transaction.
Rows are bounded: calls by the calls in flight, rates and spend by the clients
active this minute and this month; :func:`delete_stale` deletes what is stale.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from imagegate_server.limits import ceilings
from imagegate_server.limits.decision import Standing, decide
from imagegate_server.limits.model import (
    MAX_CLIENT_UPSTREAMS,
    Admission,
    ClientSpend,
    RateLimit,
    SpendListing,
    Ticket,
    UpstreamSpend,
    UpstreamStatus,
)
from imagegate_server.limits.periods import period_number
from imagegate_server.localdb import Schema

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
        """
        CREATE TABLE limit_client_upstream_spend (
            client TEXT NOT NULL,
            upstream TEXT NOT NULL,
            period TEXT NOT NULL,
            number INTEGER NOT NULL,
            micros INTEGER NOT NULL,
            PRIMARY KEY (client, upstream, period)
        ) WITHOUT ROWID
        """,
    ),
)


def admit(
    db: sqlite3.Connection, admission: Admission, ticket: str, now_us: int, unix: float
) -> None:
    """Check every limit of ``admission`` and charge them all, or raise
    :class:`~imagegate_server.errors.LimitRefused` and charge none."""
    client = admission.client
    db.execute("DELETE FROM limit_calls WHERE client = ? AND expires_us <= ?", (client, now_us))
    current = standing(db, client, admission.rates, now_us, unix)
    replaced = admission.replaces.id if admission.replaces is not None else None
    held = (
        replaced
        and db.execute(
            "SELECT reserved_micros FROM limit_calls WHERE ticket = ? AND client = ?",
            (replaced, client),
        ).fetchone()
    )
    if held:
        current = current.without_call(int(held[0]))  # the ticket this one takes over
    charges = decide(admission, current, now_us, unix)  # raises LimitRefused
    if held:
        db.execute("DELETE FROM limit_calls WHERE ticket = ?", (replaced,))
    db.executemany(
        "INSERT INTO limit_rates (scope, name, tat_us) VALUES (?, ?, ?) "
        "ON CONFLICT (scope, name) DO UPDATE SET tat_us = excluded.tat_us",
        [(rate.scope, rate.name, tat) for rate, tat in charges],
    )
    db.execute(
        "INSERT INTO limit_calls (ticket, client, expires_us, reserved_micros) VALUES (?, ?, ?, ?)",
        (ticket, client, now_us + admission.hold_us, admission.reserve_micros),
    )


def settle(
    db: sqlite3.Connection, ticket: Ticket, cost: int, upstream: str | None, unix: float
) -> None:
    """Free the ticket's slot and reservation; book ``cost`` to its client (and to
    ``upstream``, the one that answered)."""
    db.execute("DELETE FROM limit_calls WHERE ticket = ?", (ticket.id,))
    if not cost:
        return
    # A late settle (after its reservation expired) still counts: the bill is real.
    _add_spend(db, "limit_spend", "client", ticket.client, cost, unix)
    if upstream is not None:
        _add_spend(db, "limit_upstream_spend", "upstream", upstream, cost, unix)
        _add_client_upstream_spend(db, ticket.client, upstream, cost, unix)


def take_upstream(
    db: sqlite3.Connection, upstream: str, rates: Sequence[RateLimit], now_us: int
) -> float:
    """Charge ``upstream``'s ceilings; the wait until they would pass, 0 if they did."""
    tats = {
        name: tat for name, tat in _upstream_tats(db, upstream, rates).items() if tat is not None
    }
    wait, charges = ceilings.check(rates, tats, now_us)
    db.executemany(
        "INSERT INTO limit_rates (scope, name, tat_us) VALUES (?, ?, ?) "
        "ON CONFLICT (scope, name) DO UPDATE SET tat_us = excluded.tat_us",
        [(ceilings.SQLITE_SCOPE + upstream, rate.name, tat) for rate, tat in charges],
    )
    return wait


def upstream_status(
    db: sqlite3.Connection, upstream: str, rates: Sequence[RateLimit], now_us: int, unix: float
) -> UpstreamStatus:
    tats = _upstream_tats(db, upstream, rates)
    spent = _spent(db, upstream, unix, "limit_upstream_spend", "upstream")
    return UpstreamStatus(
        upstream, ceilings.rate_status(rates, tats, now_us), spent["day"], spent["month"]
    )


def client_upstream_spend(
    db: sqlite3.Connection, client: str, unix: float
) -> tuple[UpstreamSpend, ...]:
    """``client``'s spend per upstream with spend this month, by name."""
    day, month = period_number("day", unix), period_number("month", unix)
    rows = db.execute(
        "SELECT m.upstream, coalesce(d.micros, 0), m.micros "
        "FROM limit_client_upstream_spend m LEFT JOIN limit_client_upstream_spend d "
        "ON d.client = m.client AND d.upstream = m.upstream AND d.period = 'day' "
        "AND d.number = ? "
        "WHERE m.client = ? AND m.period = 'month' AND m.number = ? AND m.micros > 0 "
        "ORDER BY m.upstream LIMIT ?",
        (day, client, month, MAX_CLIENT_UPSTREAMS),
    )
    return tuple(UpstreamSpend(name, int(today), int(total)) for name, today, total in rows)


def standing(
    db: sqlite3.Connection, client: str, rates: Sequence[RateLimit], now_us: int, unix: float
) -> Standing:
    """Where ``client`` stands: its rates' TATs, calls in flight, spend, reservations."""
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


def delete_stale(db: sqlite3.Connection, now_us: int, unix: float) -> None:
    """Delete drained rates, expired calls and past periods."""
    db.execute("DELETE FROM limit_rates WHERE tat_us <= ?", (now_us,))
    db.execute("DELETE FROM limit_calls WHERE expires_us <= ?", (now_us,))
    for table in ("limit_spend", "limit_upstream_spend", "limit_client_upstream_spend"):
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


def _add_client_upstream_spend(
    db: sqlite3.Connection, client: str, upstream: str, cost: int, unix: float
) -> None:
    """Book ``cost`` to the client's spend on ``upstream``, unless the client already
    holds :data:`MAX_CLIENT_UPSTREAMS` other upstreams this month (its total has it)."""
    month = period_number("month", unix)
    held, others = db.execute(
        "SELECT count(*) FILTER (WHERE upstream = ?), count(*) FROM limit_client_upstream_spend "
        "WHERE client = ? AND period = 'month' AND number = ?",
        (upstream, client, month),
    ).fetchone()
    if not held and others >= MAX_CLIENT_UPSTREAMS:
        return
    db.executemany(
        "INSERT INTO limit_client_upstream_spend "
        "(client, upstream, period, number, micros) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (client, upstream, period) DO UPDATE SET "
        "micros = CASE WHEN number = excluded.number THEN micros + excluded.micros "
        "ELSE excluded.micros END, number = excluded.number",
        [(client, upstream, p, period_number(p, unix), cost) for p in ("day", "month")],
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
