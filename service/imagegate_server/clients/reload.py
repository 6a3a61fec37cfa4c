"""The live clients file: loaded at start, re-read when it changes, swapped atomically.

How changes are seen, and what a bad version does (the last good registry stays,
one error line per version), is :mod:`imagegate_server.livefiles.watch`. Write the
file atomically (rename a new file over it, as the CLI and the kubelet do).
"""

from __future__ import annotations

import logging
from pathlib import Path

from imagegate_server.clients.fileformat import load
from imagegate_server.clients.registry import ClientRegistry
from imagegate_server.livefiles.watch import LiveFile
from imagegate_server.settings import Settings

log = logging.getLogger(__name__)


def load_registry(path: Path) -> ClientRegistry:
    """Read and validate ``path`` into a registry. Raises :class:`ClientsFileError`."""
    return ClientRegistry.from_document(load(path).document)


class ClientsFile(LiveFile[ClientRegistry]):
    """The clients file at ``path``, kept current while :meth:`start`-ed.

    Construction loads the file (blocking, at start-up) and raises
    :class:`StartupError` with one line naming the file and the field.
    """

    def __init__(self, path: Path, *, reload_s: float = 2.0) -> None:
        super().__init__(
            path,
            load_registry,
            setting="IMAGEGATE_CLIENTS_FILE",
            what="clients file",
            log=log,
            reload_s=reload_s,
            empty_hint=" (write [clients] for no clients)",
            summary=lambda registry: {"clients": len(registry)},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientsFile | None:
        """The configured clients file (loaded), or None when none is configured."""
        if settings.clients_file is None:
            return None
        return cls(settings.clients_file, reload_s=settings.clients_reload_s)
