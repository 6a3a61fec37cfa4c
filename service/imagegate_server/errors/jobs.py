"""Endings of jobs and of calls kept under a request id: a reused request id, an
unknown or unfinished operation, a job cancelled, aborted or timed out in its
queue, and a kept call's earlier failure."""

from __future__ import annotations

from imagegate_server.errors.base import ImagegateError


class AlreadyExists(ImagegateError):
    """A request id (AIP-155) came back with another request: ``field`` is the first
    field that differs (``request_id`` itself when it was used on another RPC)."""

    def __init__(self, request_id: str, field: str) -> None:
        if field == "request_id":
            message = f"request_id {request_id} was used before on another RPC of this client"
        else:
            message = f"request_id {request_id} was used before with a different {field}"
        super().__init__(message)
        self.field = field


class OperationNotFound(ImagegateError):
    """No operation of the caller has this name: unknown, expired, or another
    client's (one answer for all three, so that names cannot be probed)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no operation {name[:60]} for this client")


class OperationNotDone(ImagegateError):
    """DeleteOperation on an operation that has not finished (cancel it first)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"operation {name[:60]} has not finished; cancel it, then delete it")


class JobCancelled(ImagegateError):
    def __init__(self) -> None:
        super().__init__("the job was cancelled")


class JobAborted(ImagegateError):
    """The replica running the job stopped (killed, out of memory) after its request
    had gone upstream: it is never re-run, since OpenAI may have billed it."""

    def __init__(self) -> None:
        super().__init__(
            "the gateway replica running this job stopped after sending it to OpenAI; "
            "it was not run again (OpenAI may have billed it: its estimate was charged)"
        )


class KeptFailure(ImagegateError):
    """A call with a request id ended with this status (a serialized
    ``google.rpc.Status``) before: its retry gets the same status."""

    def __init__(self, status: bytes) -> None:
        super().__init__("the call with this request_id failed")
        self.status = status


class JobTimedOut(ImagegateError):
    """The job waited in its queue longer than the gateway keeps jobs queued."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the job waited in the queue for more than {seconds:g} s")
