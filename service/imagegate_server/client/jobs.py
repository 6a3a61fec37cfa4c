"""Image jobs from Python: submit, wait, collect.

    async with grpc.aio.insecure_channel("127.0.0.1:50051") as channel:
        jobs = JobsClient(channel, metadata=(("authorization", "Bearer igk_..."),))
        operation = await jobs.submit_generation(parameters, request_id=str(uuid.uuid4()))
        done = await jobs.wait(operation.name, timeout_s=600)
        paths = await collect(result_of(done), Path("fox.png"))

The operation's name is all a caller needs to come back later, from any process
(``jobs.get(name)``); ``request_id`` makes a resubmit after a lost answer free
(the gateway answers with the first submit's operation). Waiting uses
``WaitOperation`` (the gateway wakes it when the job ends; it never polls), as
many times as ``timeout_s`` needs, since the gateway bounds one wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from imagegate.v1 import jobs_pb2, jobs_pb2_grpc, params_pb2, results_pb2

from imagegate_server.client.fetch import result_images
from imagegate_server.client.output import OutputPlan, extension_for, write_file
from imagegate_server.client.upload import Upload, request_stream

Metadata = Sequence[tuple[str, str]]
_WAIT_S = 60


class JobFailed(Exception):
    """The job ended with an error (``code``: the gRPC status code's name)."""

    def __init__(self, name: str, code: str, message: str) -> None:
        super().__init__(f"{name} {code}: {message}")
        self.code = code


def metadata_of(operation: operations_pb2.Operation) -> jobs_pb2.ImageJobMetadata:
    meta = jobs_pb2.ImageJobMetadata()
    operation.metadata.Unpack(meta)
    return meta


def result_of(operation: operations_pb2.Operation) -> results_pb2.ImagesResult:
    """The result of a done operation; raises :class:`JobFailed` for a failed or
    cancelled one, ValueError for one not done yet."""
    if not operation.done:
        raise ValueError(f"{operation.name} is not done")
    if operation.HasField("error"):
        code = grpc.StatusCode(_code_tuple(operation.error.code)).name
        raise JobFailed(operation.name, code, operation.error.message)
    result = results_pb2.ImagesResult()
    operation.response.Unpack(result)
    return result


def _code_tuple(number: int) -> Any:
    return next(code.value for code in grpc.StatusCode if code.value[0] == number)


class JobsClient:
    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata = ()) -> None:
        self._submit = jobs_pb2_grpc.ImageJobsServiceStub(channel)
        self._ops = operations_pb2_grpc.OperationsStub(channel)
        self._metadata = tuple(metadata)

    async def submit_generation(
        self,
        parameters: params_pb2.GenerationParameters,
        *,
        request_id: str = "",
        timeout_s: float = 60,
    ) -> operations_pb2.Operation:
        """``parameters.delivery``: unset stores the images (links in the result)."""
        request = jobs_pb2.SubmitImageJobRequest(parameters=parameters, request_id=request_id)
        operation: operations_pb2.Operation = await self._submit.SubmitImageJob(
            request, metadata=self._metadata, timeout=timeout_s
        )
        return operation

    async def submit_upload(
        self,
        parameters: params_pb2.EditParameters | params_pb2.VariationParameters,
        uploads: list[Upload],
        *,
        request_id: str = "",
        timeout_s: float = 300,
    ) -> operations_pb2.Operation:
        """An edit or variation job; ``uploads`` as :func:`.upload.declare` makes them,
        already declared in ``parameters``."""
        kind: Any
        rpc: Any
        if isinstance(parameters, params_pb2.EditParameters):
            kind, rpc = jobs_pb2.SubmitImageEditJobRequest, self._submit.SubmitImageEditJob
        else:
            kind = jobs_pb2.SubmitImageVariationJobRequest
            rpc = self._submit.SubmitImageVariationJob
        first = kind(parameters=parameters, request_id=request_id)
        requests = request_stream(first, uploads, lambda chunk: kind(chunk=chunk))
        operation: operations_pb2.Operation = await rpc(
            requests, metadata=self._metadata, timeout=timeout_s
        )
        return operation

    async def get(self, name: str) -> operations_pb2.Operation:
        request = operations_pb2.GetOperationRequest(name=name)
        operation: operations_pb2.Operation = await self._ops.GetOperation(
            request, metadata=self._metadata, timeout=30
        )
        return operation

    async def wait(self, name: str, timeout_s: float) -> operations_pb2.Operation:
        """The operation once done, or as it is after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            left = max(0.0, deadline - loop.time())
            seconds = min(_WAIT_S, left)
            request = operations_pb2.WaitOperationRequest(
                name=name, timeout=duration_pb2.Duration(seconds=int(seconds), nanos=0)
            )
            operation: operations_pb2.Operation = await self._ops.WaitOperation(
                request, metadata=self._metadata, timeout=seconds + 30
            )
            if operation.done or loop.time() >= deadline or seconds < 1:
                return operation

    async def cancel(self, name: str) -> None:
        request = operations_pb2.CancelOperationRequest(name=name)
        await self._ops.CancelOperation(request, metadata=self._metadata, timeout=30)

    async def delete(self, name: str) -> None:
        request = operations_pb2.DeleteOperationRequest(name=name)
        await self._ops.DeleteOperation(request, metadata=self._metadata, timeout=30)

    async def list(
        self, filter_text: str = "", page_size: int = 50
    ) -> AsyncIterator[operations_pb2.Operation]:
        """The caller's operations, newest first, every page."""
        token = ""
        while True:
            request = operations_pb2.ListOperationsRequest(
                name="operations", filter=filter_text, page_size=page_size, page_token=token
            )
            page = await self._ops.ListOperations(request, metadata=self._metadata, timeout=30)
            for operation in page.operations:
                yield operation
            token = page.next_page_token
            if not token:
                return


async def collect(
    result: results_pb2.ImagesResult, output: Path, download_timeout_s: float = 60
) -> list[Path]:
    """Write every image of ``result`` to ``output`` (FILE, or FILE-1.ext, FILE-2.ext...
    when there are several), from its bytes or its link; the paths written."""
    plan = OutputPlan(output)
    paths: list[Path] = []
    images = await result_images(result, timeout_s=download_timeout_s)
    for index, data in enumerate(images):
        path = plan.final_path(index, len(images), extension_for(data, result.output_format))
        write_file(path, data)
        paths.append(path)
    return paths
