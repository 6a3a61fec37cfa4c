"""Micro-dollars: the one unit of money in the gateway, and its two roundings.

A price of X USD per 1M tokens is X micro-dollars per token, so a call's cost in
micro-dollars is a sum of ``tokens x price`` with the table's decimal prices as they
stand: no scaling, no float. The sum is exact (:class:`~decimal.Decimal`) and is
rounded once, at the end of the call, never per token kind or per image:

- a cost (what a finished call spent) rounds half up: 0.5 micro-dollars -> 1;
- an estimate (what a reservation holds) rounds up, so it never falls below the
  exact figure it stands for.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

MICROS_PER_USD = 1_000_000
_ONE = Decimal(1)


def usd_to_micros(usd: Decimal) -> Decimal:
    """Dollars as (exact, possibly fractional) micro-dollars."""
    return usd * MICROS_PER_USD


def round_cost(micros: Decimal) -> int:
    """A call's exact cost as whole micro-dollars, half up."""
    return int(micros.quantize(_ONE, rounding=ROUND_HALF_UP))


def round_estimate(micros: Decimal) -> int:
    """An estimate as whole micro-dollars, rounded up."""
    return int(micros.quantize(_ONE, rounding=ROUND_CEILING))


def format_usd(micros: int) -> str:
    """Exact dollars from micro-dollars, for people: ``$10.00``, ``$0.0415``, ``$1,234.50``."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 1_000_000)
    cents = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${whole:,}.{cents}"
