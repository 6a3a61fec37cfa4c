"""The limits a job passes when it starts, and the budget reservation made at its
submit, as the runners see them (the edge's tenancy implements them, over the limits
stage)."""

from __future__ import annotations

from typing import Protocol

from imagegate_server.jobs.payload import Reservation
from imagegate_server.limits import Ticket


class JobAdmissions(Protocol):
    """The limits a job passes when it starts (the edge's tenancy implements it)."""

    async def start(self, client: str, n: int) -> Ticket:
        """The client's rates and concurrency slot (raises LimitRefused or
        LimiterUnavailable)."""
        ...

    async def settle(self, ticket: Ticket, amount_micros: int, upstream: str | None = None) -> None:
        """``upstream``: the one that answered (or was sent) the job, its cost booked
        to it too (None: not known, as for a job never sent)."""
        ...


def reservation_ticket(client: str, reservation: Reservation | None) -> Ticket | None:
    """The budget reservation made at submit, as a ticket any process can settle."""
    if reservation is None:
        return None
    return Ticket(reservation.ticket, client, reservation.reserved_micros, reservation.accounted)
