"""Refusals of what the caller sent or is: its credentials, its policy, its request
(fields, a retired model) and the pace of its upload. Nothing went upstream."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from imagegate_server.errors.base import ImagegateError


class Unauthenticated(ImagegateError):
    """The call carries no credentials this gateway accepts. One message for every
    cause (unknown token, wrong secret, bad checksum, expired, unknown certificate),
    so a caller cannot probe which part was wrong."""


class NotPermitted(ImagegateError):
    """The caller's policy forbids this call (a model, an operation, its ``n``)."""

    def __init__(self, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = metadata


@dataclass(frozen=True)
class FieldViolation:
    """A field of the request (proto path, e.g. ``parameters.images[1]``) and what is wrong."""

    field: str
    description: str
    reason: str = ""
    """A machine-readable reason (OpenAI-like code), when there is one."""


class InvalidRequest(ImagegateError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
        super().__init__(f"invalid request: {summary}")
        self.violations = violations

    @classmethod
    def one(cls, field: str, description: str, reason: str = "") -> InvalidRequest:
        return cls([FieldViolation(field, description, reason)])


class ModelRetired(ImagegateError):
    """The call names a model OpenAI no longer serves; answered without going upstream."""

    def __init__(
        self, model: str, shutdown: datetime.date, replacement: str, *, operation_served: bool
    ) -> None:
        advice = (
            f"use '{replacement}' instead"
            if operation_served
            else f"OpenAI serves this operation with no other model ('{replacement}' replaces "
            "it for the others); use a compatible server that still offers it"
        )
        super().__init__(
            f"model '{model[:100]}' was shut down by OpenAI on {shutdown.isoformat()}; {advice}"
        )
        self.model = model
        self.shutdown = shutdown
        self.replacement = replacement


class CallerStalled(ImagegateError):
    """An upload's caller did not send its next message in time: its first one
    (``FIRST_MESSAGE_TIMEOUT``) or one mid-upload (``UPLOAD_STALLED``)."""

    def __init__(self, reason: str, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.timeout_s = timeout_s
