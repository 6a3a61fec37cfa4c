"""An offline, OpenAI-compatible Images API server (the gateway's default upstream).

Public API: :class:`Emulator`, :class:`EmulatorConfig`, :class:`LatencyModel`,
:class:`Journal` and its entries, the fault header name, and :func:`read_identity`
to check which request an image belongs to.
"""

from imagegate_server.emulator.config import EmulatorConfig, LatencyModel
from imagegate_server.emulator.faults import FAULT_HEADER, FaultSyntaxError
from imagegate_server.emulator.journal import FileRecord, Journal, JournalEntry, JournalEvent
from imagegate_server.emulator.render import IDENTITY_KEY, identity, read_identity
from imagegate_server.emulator.server import Emulator

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
