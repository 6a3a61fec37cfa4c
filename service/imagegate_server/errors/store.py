"""Failures of the result store: it is down (or too slow, or refused), or it holds
no image of the caller's by the reference given."""

from __future__ import annotations

from imagegate_server.errors.base import ImagegateError


class StoreUnavailable(ImagegateError):
    """The result store is down, too slow or refused an operation; nothing of the
    object is visible. ``kind`` says which (``unreachable``, ``timeout``,
    ``denied``, ``not_found``, ``refused``, ``io``), for metrics and logs; the
    message names no address, bucket or credential."""

    def __init__(self, kind: str, operation: str = "put") -> None:
        super().__init__(f"the result store is unavailable ({operation} failed: {kind})")
        self.kind = kind
        self.operation = operation


class StoredImageNotFound(ImagegateError):
    """No stored image of the caller's client by that reference: one answer whether it
    is another client's, expired, deleted or never existed (no oracle)."""

    def __init__(self) -> None:
        super().__init__("no stored image of this client has that reference (or it expired)")
