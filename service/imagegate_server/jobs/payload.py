"""A job's request and outcome as the stores keep them: two opaque blobs.

The request is written once, at submit: the parameters message as the caller sent
it (re-judged when the job runs, so a job queued across a release is checked by
the rules of the replica that runs it), where its uploads are in the result store,
its budget reservation, and the field digests that name what differs when a
request id comes back with other parameters. The outcome is written once, when the
job ends: the result (image bytes not in it: they are in the result store) or the
error, as the ``google.rpc.Status`` the caller gets.

JSON (orjson), bytes in base64: small, and readable with ``redis-cli HGET``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    return base64.b64decode(text) if isinstance(text, str) else b""


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file kept in the result store until the job has run."""

    role: int
    """``FileRole`` number of the contract (image, mask, markup)."""
    index: int
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Reservation:
    """The budget reservation made at submit (a limiter ticket, rebuilt to settle it
    on whichever replica ends the job)."""

    ticket: str
    reserved_micros: int
    accounted: bool


@dataclass(frozen=True)
class JobRequest:
    parameters: bytes
    """The parameters message (Generation/Edit/VariationParameters), serialized."""
    files: tuple[StoredFile, ...] = ()
    stored: bool = True
    """Its images are delivered stored (links), else inline (DELIVERY_INLINE); either
    way they are kept in the result store for the job's retention."""
    reservation: Reservation | None = None
    fields: dict[str, str] = field(default_factory=dict)
    """Parameter path -> digest, in the order the contract lists them."""
    traceparent: str = ""
    """The submit's span (W3C ``traceparent``): the run's span links to it."""
    identity: str = ""
    """Stamped as OpenAI's end user (``safety_identifier``/``user``) unless the
    parameters name one: the client id, when its policy says so."""

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "p": _b64(self.parameters),
            "f": [[f.role, f.index, f.key, f.size, f.sha256] for f in self.files],
            "s": self.stored,
            "d": self.fields,
            "t": self.traceparent,
            "u": self.identity,
        }
        if self.reservation is not None:
            r = self.reservation
            body["r"] = [r.ticket, r.reserved_micros, r.accounted]
        return orjson.dumps(body)

    @classmethod
    def decode(cls, data: bytes) -> JobRequest:
        body = orjson.loads(data) if data else {}
        reservation = body.get("r")
        return cls(
            parameters=_unb64(body.get("p")),
            files=tuple(StoredFile(*item) for item in body.get("f", ())),
            stored=bool(body.get("s", True)),
            reservation=Reservation(*reservation) if reservation else None,
            fields=dict(body.get("d", {})),
            traceparent=str(body.get("t", "")),
            identity=str(body.get("u", "")),
        )


@dataclass(frozen=True)
class StoredResultImage:
    """One final image of a result, in the result store."""

    key: str
    content_type: str
    size: int


Describe = Callable[[BaseException], bytes]
"""An error -> the ``google.rpc.Status`` a caller gets for it, serialized (a failed
:class:`JobOutcome`'s ``error``)."""


@dataclass(frozen=True)
class JobOutcome:
    result: bytes = b""
    """The ImagesResult, serialized, its images' bytes left out."""
    images: tuple[StoredResultImage | None, ...] = ()
    """Per image of the result: where its bytes are (None: a URL result)."""
    error: bytes = b""
    """The ``google.rpc.Status`` of a failed or cancelled job, serialized."""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "r": _b64(self.result),
                "m": [None if i is None else [i.key, i.content_type, i.size] for i in self.images],
                "e": _b64(self.error),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> JobOutcome:
        if not data:
            return cls()
        body = orjson.loads(data)
        return cls(
            result=_unb64(body.get("r")),
            images=tuple(None if i is None else StoredResultImage(*i) for i in body.get("m", ())),
            error=_unb64(body.get("e")),
        )
