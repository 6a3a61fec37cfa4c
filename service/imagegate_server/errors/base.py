"""The two roots: :class:`ImagegateError`, base of every error the gateway answers a
call with, and :class:`StartupError`, the one that stops it from starting."""

from __future__ import annotations


class StartupError(Exception):
    """The gateway cannot start; the message is one line for the operator (no secrets)."""


class ImagegateError(Exception):
    """Base of every error the gateway answers with."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
