"""What the store tells metrics and traces (they observe; they never steer), and the
silent stand-ins used when nobody listens.

:class:`StoreObserver` is implemented by :class:`~imagegate_server.metrics.Metrics`'s
``store`` (:mod:`imagegate_server.metrics.store`), :class:`StoreTracer` by
:mod:`imagegate_server.tracing`'s store spans.
"""

from __future__ import annotations

from typing import Protocol


class StoreObserver(Protocol):
    """Told of every store operation, sweep and link request."""

    def operation(self, backend: str, operation: str, seconds: float) -> None:
        """``operation`` (``put``, ``get``, ``delete``, ``list``, ``link``) succeeded."""

    def written(self, backend: str, size: int) -> None:
        """An object of ``size`` bytes became visible."""

    def failed(self, backend: str, operation: str, kind: str, seconds: float) -> None:
        """``operation`` failed: ``kind`` as :class:`~imagegate_server.errors.
        StoreUnavailable` names it."""

    def swept(self, outcome: str, objects: int, size: int) -> None:
        """A sweep ended: ``outcome`` ``swept``, ``skipped`` (another replica holds the
        sweep) or ``failed``; it deleted ``objects`` holding ``size`` bytes."""

    def link_request(self, status: int) -> None:
        """The local store's link port answered ``status`` (403: a bad link)."""


class StoreSpan(Protocol):
    """The span of one write."""

    def written(self, size: int) -> None:
        """The object is visible, ``size`` bytes."""

    def failed(self, kind: str) -> None:
        """The write failed (``kind`` as StoreUnavailable names it)."""

    def end(self) -> None:
        """Called once, whatever happened."""


class StoreTracer(Protocol):
    """Starts a span per write (a child of the call's span)."""

    def write(self, backend: str, key: str, content_type: str) -> StoreSpan: ...


class Unobserved:
    """A :class:`StoreObserver` that records nothing."""

    def operation(self, backend: str, operation: str, seconds: float) -> None:
        pass

    def written(self, backend: str, size: int) -> None:
        pass

    def failed(self, backend: str, operation: str, kind: str, seconds: float) -> None:
        pass

    def swept(self, outcome: str, objects: int, size: int) -> None:
        pass

    def link_request(self, status: int) -> None:
        pass


class _NoSpan:
    def written(self, size: int) -> None:
        pass

    def failed(self, kind: str) -> None:
        pass

    def end(self) -> None:
        pass


_NO_SPAN = _NoSpan()


class Untraced:
    """A :class:`StoreTracer` whose spans record nothing."""

    def write(self, backend: str, key: str, content_type: str) -> StoreSpan:
        return _NO_SPAN
