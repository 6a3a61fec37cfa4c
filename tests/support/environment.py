"""Tests that must not see the developer's own ``IMAGEGATE_*`` settings clear them,
but keep the ones tests/conftest.py sets for every gateway of the session."""

from __future__ import annotations

import os

import pytest

SESSION_SETTINGS = frozenset({"IMAGEGATE_DATA_DIR", "IMAGEGATE_STORE_HTTP_PORT"})
"""The data directory (else a gateway keeps its state in the checkout's ``data/``) and
the free link port (else two gateways collide on its fixed default)."""


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deletes, until the test ends, every ``IMAGEGATE_*`` variable but the session's."""
    for name in list(os.environ):
        if name.startswith("IMAGEGATE_") and name not in SESSION_SETTINGS:
            monkeypatch.delenv(name)
