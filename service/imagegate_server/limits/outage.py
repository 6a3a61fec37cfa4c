"""What the Redis limiter does while Redis cannot be reached, per kind of limit."""

from __future__ import annotations

from dataclasses import dataclass

from imagegate_server.limits.model import Admission


@dataclass(frozen=True)
class OutagePolicy:
    """Per kind of limit: while Redis is unreachable, admit uncounted (open) or refuse."""

    rates_open: bool = True
    concurrency_open: bool = True
    budgets_open: bool = False

    def closed_kinds(self, admission: Admission) -> list[str]:
        kinds = []
        if admission.rates and not self.rates_open:
            kinds.append("rate")
        if admission.max_concurrent is not None and not self.concurrency_open:
            kinds.append("concurrency")
        if admission.budgets and not self.budgets_open:
            kinds.append("budget")
        return kinds

    def describe(self) -> str:
        def word(is_open: bool) -> str:
            return "open" if is_open else "closed"

        return (
            f"rates fail {word(self.rates_open)}, concurrency fails "
            f"{word(self.concurrency_open)}, budgets fail {word(self.budgets_open)}"
        )
