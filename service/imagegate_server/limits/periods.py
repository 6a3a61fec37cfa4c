"""UTC budget periods, numbered the way the Redis scripts number them.

A day is its number since 1970-01-01; a month is ``year * 12 + month - 1``. The Lua
scripts compute the same numbers from Redis's ``TIME`` (``common.lua``), and the
tests check that both agree across day, month and leap-year boundaries.
"""

from __future__ import annotations

from datetime import UTC, datetime

from imagegate_server.limits.model import Period

DAY_S = 86_400


def day_number(unix_s: float) -> int:
    return int(unix_s // DAY_S)


def month_number(unix_s: float) -> int:
    moment = datetime.fromtimestamp(unix_s, UTC)
    return moment.year * 12 + moment.month - 1


def period_number(period: Period, unix_s: float) -> int:
    return day_number(unix_s) if period == "day" else month_number(unix_s)


def period_end(period: Period, unix_s: float) -> datetime:
    """Start of the UTC day or month after the one ``unix_s`` falls in."""
    if period == "day":
        return datetime.fromtimestamp((day_number(unix_s) + 1) * DAY_S, UTC)
    moment = datetime.fromtimestamp(unix_s, UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def seconds_until_period_end(period: Period, unix_s: float) -> float:
    return max(0.0, period_end(period, unix_s).timestamp() - unix_s)
