"""The Lua scripts of the Redis backend, read from this package's ``scripts/`` folder.

Each script is ``common.lua`` (clock, calendar, GCRA) followed by its own body, so
the algorithm exists once on the Redis side.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

NAMES = (
    "admit",
    "settle",
    "status",
    "ceiling_admit",
    "ceiling_refund",
    "peek_rates",
    "upstream_spend",
    "upstream_status",
    "client_upstreams",
)


def _read(name: str) -> str:
    return (resources.files("imagegate_server.limits") / "scripts" / f"{name}.lua").read_text(
        "utf-8"
    )


@cache
def source(name: str) -> str:
    """The full text of script ``name`` (one of :data:`NAMES`, or ``common`` alone)."""
    if name == "common":
        return _read("common")
    if name not in NAMES:
        raise KeyError(name)
    return _read("common") + "\n" + _read(name)
