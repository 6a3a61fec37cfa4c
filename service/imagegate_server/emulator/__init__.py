"""An offline, OpenAI-compatible Images API server (the gateway's default upstream).

Public API: :class:`Emulator`, :class:`EmulatorConfig`, :class:`LatencyModel`,
:class:`Journal` and its entries, the fault header name, and :func:`read_identity`
to check which request an image belongs to.

The server (aiohttp) and the renderer (Pillow) load on first use of their names:
``imagegate --help`` imports :mod:`.command`, which needs only the configuration.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from imagegate_server.emulator.config import EmulatorConfig, LatencyModel
from imagegate_server.emulator.faults import FAULT_HEADER, FaultSyntaxError
from imagegate_server.emulator.journal import FileRecord, Journal, JournalEntry, JournalEvent

if TYPE_CHECKING:
    from imagegate_server.emulator.render import IDENTITY_KEY, identity, read_identity
    from imagegate_server.emulator.server import Emulator

_LAZY = {
    "Emulator": "imagegate_server.emulator.server",
    "IDENTITY_KEY": "imagegate_server.emulator.render",
    "identity": "imagegate_server.emulator.render",
    "read_identity": "imagegate_server.emulator.render",
}

__all__ = [
    "FAULT_HEADER",
    "IDENTITY_KEY",
    "Emulator",
    "EmulatorConfig",
    "FaultSyntaxError",
    "FileRecord",
    "Journal",
    "JournalEntry",
    "JournalEvent",
    "LatencyModel",
    "identity",
    "read_identity",
]


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
