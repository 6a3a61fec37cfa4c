"""A failed call -> one line a person can act on.

The gateway puts the useful part of an error in ``google.rpc.Status`` details
(which field, OpenAI's reason, when to retry); the status message alone often
lacks it. Failures the gateway never saw (nothing listening, our own deadline)
carry no details, and gRPC's own text for them is long and cryptic, so those get
a plain sentence naming the target instead.
"""

from __future__ import annotations

import re
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from imagegate_server.client.parsers import DEFAULT_PORT

PROGRAM = "imagegate"
# gRPC's own codes for a gateway it never reached (or that never answered).
_UNREACHED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
DETAILS_KEY = "grpc-status-details-bin"
UPSTREAM_REQUEST_ID = "x-upstream-request-id"
# Metadata of ErrorInfo that is noise on a command line (the HTTP status is implied
# by the gRPC code) or printed under its own label.
_QUIET_METADATA = frozenset({"upstream_status", "upstream_request_id", "param"})
# What grpc's asyncio client reports instead of the server's status when a write
# fails because the server has already ended the call.
LOST_UPLOAD_STATUS = "Internal error from Core"
_CONNECT_CAUSES = (
    ("connection refused", "connection refused"),
    ("dns resolution failed", "name not resolved"),
    ("name or service not known", "name not resolved"),
    ("connection reset", "connection reset"),
    ("timeout occurred", "connect timed out"),
    ("handshake", "TLS handshake failed"),
    ("ssl", "TLS error"),
)


# How a status message says when to retry ("...; retry in 59.9 s").
_RETRY_STATED = re.compile(r"\bretry (?:in|after) \d")


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status the server attached, if any."""
    try:
        # AioRpcError offers the code/details/trailing_metadata that from_call reads;
        # the stubs only declare grpc.Call.
        status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
        return status
    except ValueError:
        # Code or message disagree with the trailer (a proxy rewrote the status):
        # the details are still worth showing, so decode them directly.
        for key, value in trailers(error):
            if key == DETAILS_KEY and isinstance(value, bytes):
                return status_pb2.Status.FromString(value)
        return None


def trailers(error: grpc.aio.AioRpcError) -> list[tuple[str, str | bytes]]:
    # The runtime Metadata yields (key, value) pairs; the stubs type it loosely.
    metadata: Any = error.trailing_metadata()
    return [(str(key), value) for key, value in metadata or ()]


def _unpack(detail: any_pb2.Any, message: str) -> list[str]:
    """Compact phrases for one detail, leaving out what ``message`` already says (the
    gateway's limiter states the limit, whose it is and when to retry in the message,
    and again in QuotaFailure and RetryInfo for programs); unknown types are skipped."""
    if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
        bad_request = error_details_pb2.BadRequest()
        detail.Unpack(bad_request)
        return [_violation(v) for v in bad_request.field_violations]
    if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
        info = error_details_pb2.ErrorInfo()
        detail.Unpack(info)
        parts = [f"reason {info.reason}"] if info.reason else []
        if info.metadata.get("param"):
            parts.append(f"param {info.metadata['param']}")
        parts.extend(
            f"{key} {value}"
            for key, value in sorted(info.metadata.items())
            if key not in _QUIET_METADATA
        )
        if info.metadata.get("upstream_request_id"):
            parts.append(f"upstream request {info.metadata['upstream_request_id']}")
        return [", ".join(parts)] if parts else []
    if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
        if _RETRY_STATED.search(message):
            return []
        retry = error_details_pb2.RetryInfo()
        detail.Unpack(retry)
        seconds = retry.retry_delay.ToNanoseconds() / 1e9
        return [f"retry after {seconds:g}s"]
    if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
        quota = error_details_pb2.QuotaFailure()
        detail.Unpack(quota)
        return [
            f"quota {v.subject}" + (f": {one_line(v.description)}" if v.description else "")
            for v in quota.violations
            if not (v.description and one_line(v.description) in message)
        ]
    if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
        failure = error_details_pb2.PreconditionFailure()
        detail.Unpack(failure)
        return [f"{v.type} {v.subject}".strip() for v in failure.violations]
    return []


def _violation(violation: error_details_pb2.BadRequest.FieldViolation) -> str:
    # The gateway names fields by their proto path from the request
    # ("parameters.n"); the CLI user knows the parameter ("n").
    field = violation.field.removeprefix("parameters.")
    return f"field {field}"


def _field_descriptions(status: status_pb2.Status, message: str) -> list[str]:
    """Violation descriptions that the status message does not already say."""
    extra: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for v in bad_request.field_violations:
                text = one_line(v.description)
                if text and text not in message and text not in extra:
                    extra.append(text)
    return extra


def describe_rpc_error(
    error: grpc.aio.AioRpcError,
    *,
    target: str,
    timeout: float,
    token_given: bool,
    tls: bool = False,
    client_certificate: bool = False,
    port_tried: int | None = None,
) -> str:
    """The whole line, ``imagegate: CODE: message (details)``.

    ``tls`` and ``client_certificate`` say how the CLI connected, so that a
    connection the gateway dropped during the handshake can be explained;
    ``port_tried``: the port gRPC fell back to because the target named none.
    """
    code = error.code()
    message = one_line(error.details() or "")
    status = rich_status(error)
    if status is None:
        shown = target if port_tried is None else _with_port(target, port_tried)
        text = _without_details(code, message, shown, timeout, token_given)
        if code == grpc.StatusCode.UNAVAILABLE and tls and _closed_on_connect(message):
            text = f"{text}; {_handshake_hint(client_certificate)}"
        if port_tried is not None and code in _UNREACHED and not _unresolved(message):
            text += (
                f"; the target names no port and gRPC's default is {port_tried} "
                f"(the gateway's is {DEFAULT_PORT})"
            )
        return f"{PROGRAM}: {code.name}: {text}"
    if status.message:
        message = one_line(status.message)
    descriptions = _field_descriptions(status, message)
    if descriptions:
        message = "; ".join([message, *descriptions]) if message else "; ".join(descriptions)
    parts: list[str] = []
    for detail in status.details:
        parts.extend(p for p in _unpack(detail, message) if p)
    request_id = _trailer(error, UPSTREAM_REQUEST_ID)
    if request_id and not any(request_id in part for part in parts):
        parts.append(f"upstream request {request_id}")
    suffix = f" ({'; '.join(parts)})" if parts else ""
    return f"{PROGRAM}: {code.name}: {message or code.name.lower()}{suffix}"


def _with_port(target: str, port: int) -> str:
    """``myhost`` -> ``myhost:443``; a target with a scheme (``dns:``...) as it is."""
    if target.startswith(("dns:", "ipv4:", "ipv6:")):
        return target
    return (
        f"[{target}]:{port}" if ":" in target and not target.startswith("[") else f"{target}:{port}"
    )


def _trailer(error: grpc.aio.AioRpcError, key: str) -> str | None:
    for name, value in trailers(error):
        if name == key:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return None


def _unresolved(message: str) -> bool:
    # The name did not resolve: no port was tried at all.
    lowered = message.lower()
    return "resol" in lowered or "name or service not known" in lowered


def _closed_on_connect(message: str) -> bool:
    lowered = message.lower()
    closed = "socket closed" in lowered or "connection reset" in lowered
    return "failed to connect" in lowered and closed


def _handshake_hint(client_certificate: bool) -> str:
    # A gateway that requires mTLS verifies the client's certificate after the
    # TLS 1.3 handshake looks done to the client, so all the client sees is its
    # connection being closed; say what most likely happened.
    if client_certificate:
        return "the gateway closed the TLS connection: it may not accept this --cert"
    return "the gateway closed the TLS connection: it may require a client certificate (--cert)"


def _without_details(
    code: grpc.StatusCode, message: str, target: str, timeout: float, token_given: bool
) -> str:
    """Errors raised by gRPC itself (or a proxy), which carry no google.rpc details."""
    if code == grpc.StatusCode.UNAVAILABLE:
        lowered = message.lower()
        cause = next((label for needle, label in _CONNECT_CAUSES if needle in lowered), None)
        if cause is not None or "failed to connect" in lowered:
            return f"could not reach {target} ({cause or 'failed to connect'})"
        return message or f"could not reach {target}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer from {target} within {timeout:g}s (raise --timeout)"
    if code == grpc.StatusCode.INTERNAL and message == LOST_UPLOAD_STATUS:
        # grpc/grpc#36066: when the gateway ends an upload before the client has sent
        # every chunk, grpc's asyncio client may replace the gateway's answer with this.
        return (
            "the gateway ended the call during the upload and gRPC's Python client lost "
            "its reason (grpc/grpc#36066); check the files' sizes and types"
        )
    if code == grpc.StatusCode.UNAUTHENTICATED and not token_given:
        return f"{message or 'unauthenticated'} (pass --token or set IMAGEGATE_TOKEN)"
    return message or code.name.lower()
