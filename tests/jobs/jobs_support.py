"""Helpers for job tests: requests, stubs and status details."""

from __future__ import annotations

import uuid

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.rpc import error_details_pb2, status_pb2
from imagegate.v1 import jobs_pb2, jobs_pb2_grpc, params_pb2, results_pb2

from imagegate_server.gateway.edge.status import DETAILS_KEY

OPENAI_KEY = "sk-jobstest-SECRETKEY-0123456789abcdef"


def generation_job(
    prompt: str = "a red fox",
    *,
    request_id: str = "",
    n: int = 1,
    inline: bool = False,
    **extra: object,
) -> jobs_pb2.SubmitImageJobRequest:
    parameters = params_pb2.GenerationParameters(
        prompt=prompt,
        model="gpt-image-2",
        n=n,
        quality=params_pb2.QUALITY_LOW,
        size="1024x1024",
        delivery=params_pb2.DELIVERY_INLINE if inline else params_pb2.DELIVERY_UNSPECIFIED,
        **extra,  # type: ignore[arg-type]
    )
    return jobs_pb2.SubmitImageJobRequest(parameters=parameters, request_id=request_id)


def new_request_id() -> str:
    return str(uuid.uuid4())


def stubs(
    channel: grpc.aio.Channel,
) -> tuple[jobs_pb2_grpc.ImageJobsServiceStub, operations_pb2_grpc.OperationsStub]:
    return jobs_pb2_grpc.ImageJobsServiceStub(channel), operations_pb2_grpc.OperationsStub(channel)


def metadata_of(operation: operations_pb2.Operation) -> jobs_pb2.ImageJobMetadata:
    meta = jobs_pb2.ImageJobMetadata()
    assert operation.metadata.Unpack(meta)
    return meta


def result_of(operation: operations_pb2.Operation) -> results_pb2.ImagesResult:
    result = results_pb2.ImagesResult()
    assert operation.response.Unpack(result), operation
    return result


def bad_request_fields(error: grpc.aio.AioRpcError) -> list[str]:
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                request = error_details_pb2.BadRequest()
                if detail.Unpack(request):
                    return [v.field for v in request.field_violations]
    return []
