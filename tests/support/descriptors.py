"""What a process holds open: its file descriptors' targets, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path


def open_files_in(directory: Path, pid: int | str = "self") -> list[str]:
    """Targets of ``pid``'s open descriptors on files in ``directory`` (an unlinked
    file reads ``<path> (deleted)``); none for a process that is gone."""
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    found = []
    for fd in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found
