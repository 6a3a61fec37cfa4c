"""The pieces every status answer is built from: what an error becomes (its code, its
message, its ``google.rpc`` details), ErrorInfo in the gateway's own domain, and
RetryInfo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

ERROR_DOMAIN = "imagegate"

# What one kind of error becomes: its code, a message (None: the error's own) and details.
Answer = tuple[grpc.StatusCode, str | None, list[Any]]


def info(reason: str, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)


def retry_in(seconds: float) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(seconds * 1e9))
    return error_details_pb2.RetryInfo(retry_delay=delay)


# A table of answers: the first entry whose type the error is an instance of answers it.
Answers = tuple[tuple[type[Any], Callable[[Any], Answer]], ...]
