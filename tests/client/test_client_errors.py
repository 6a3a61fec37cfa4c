"""Failed calls -> one line and exit code 1, against a real (tiny) gRPC server.

The server here is a test double of the *gateway's answers* (status codes and
google.rpc details as the contract describes them), running on 127.0.0.1:0; the
client under test is the real CLI, run through ``imagegate_server.cli.main``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from client_support import png_bytes
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from imagegate.v1 import images_service_pb2, images_service_pb2_grpc, results_pb2

from imagegate_server.cli import main

IMAGE = png_bytes(40, 30)


def _status(code: grpc.StatusCode, message: str, *details: object) -> bytes:
    packed = []
    for detail in details:
        any_message = any_pb2.Any()
        any_message.Pack(detail)  # type: ignore[arg-type]
        packed.append(any_message)
    return status_pb2.Status(
        code=code.value[0], message=message, details=packed
    ).SerializeToString()


class Servicer(images_service_pb2_grpc.ImagesServiceServicer):
    """Answers CreateImageStream according to the prompt."""

    async def CreateImageStream(  # type: ignore[override]
        self,
        request: images_service_pb2.CreateImageStreamRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[images_service_pb2.CreateImageStreamResponse]:
        prompt = request.parameters.prompt
        if prompt == "bad-n":
            message = "n: must be between 1 and 10"
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="parameters.n", description="must be between 1 and 10"
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                message,
                trailing_metadata=(
                    (
                        "grpc-status-details-bin",
                        _status(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            message,
                            error_details_pb2.BadRequest(field_violations=[violation]),
                        ),
                    ),
                ),
            )
        if prompt == "rate":
            message = "Rate limit reached for images per minute"
            info = error_details_pb2.ErrorInfo(
                reason="rate_limit_exceeded",
                domain="api.openai.com",
                metadata={"upstream_status": "429", "upstream_request_id": "req_123"},
            )
            retry = error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)
            )
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                message,
                trailing_metadata=(
                    (
                        "grpc-status-details-bin",
                        _status(grpc.StatusCode.RESOURCE_EXHAUSTED, message, info, retry),
                    ),
                    ("x-upstream-request-id", "req_123"),
                ),
            )
        if prompt == "policy":
            message = "Your request was rejected by the safety system."
            info = error_details_pb2.ErrorInfo(
                reason="moderation_blocked", metadata={"param": "prompt", "upstream_status": "400"}
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                message,
                trailing_metadata=(
                    (
                        "grpc-status-details-bin",
                        _status(grpc.StatusCode.INVALID_ARGUMENT, message, info),
                    ),
                    ("x-upstream-request-id", "req_456"),
                ),
            )
        if prompt == "quota":
            message = "too many images this minute"
            quota = error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(
                        subject="client:ci", description=message
                    )
                ]
            )
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                message,
                trailing_metadata=(
                    (
                        "grpc-status-details-bin",
                        _status(grpc.StatusCode.RESOURCE_EXHAUSTED, message, quota),
                    ),
                ),
            )
        if prompt == "slow":
            await asyncio.sleep(10)
        if prompt == "auth":
            metadata = dict(context.invocation_metadata() or ())
            if metadata.get("authorization") != "Bearer s3cret":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown token")
        if prompt == "gap":
            yield _slice(0, 0, IMAGE[:10], last=False)
            yield _slice(0, 20, IMAGE[20:], last=True)
            return
        if prompt == "no-result":
            yield _slice(0, 0, IMAGE, last=True)
            return
        # A good answer: a partial, then the image in three slices, then the result.
        yield _slice(0, 0, IMAGE, last=True, partial=0)
        cut = len(IMAGE) // 3
        yield _slice(0, 0, IMAGE[:cut], last=False)
        yield _slice(0, cut, IMAGE[cut : 2 * cut], last=False)
        yield _slice(0, 2 * cut, IMAGE[2 * cut :], last=True)
        result = results_pb2.ImagesResult(
            created=1, images=[results_pb2.GeneratedImage(revised_prompt="a better prompt")]
        )
        result.usage.input_tokens, result.usage.output_tokens, result.usage.total_tokens = 5, 7, 12
        yield images_service_pb2.CreateImageStreamResponse(result=result)


def _slice(
    index: int, offset: int, data: bytes, *, last: bool, partial: int | None = None
) -> images_service_pb2.CreateImageStreamResponse:
    piece = results_pb2.ImageChunk(image_index=index, offset=offset, data=data, last=last)
    if partial is not None:
        piece.partial_image_index = partial
    return images_service_pb2.CreateImageStreamResponse(image_chunk=piece)


@pytest.fixture(scope="module")
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server()
    images_service_pb2_grpc.add_ImagesServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    # The CLI runs its own event loop (asyncio.run), so it gets a thread while the
    # test server keeps serving on this one.
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("bad-n", "imagegate: INVALID_ARGUMENT: n: must be between 1 and 10 (field n)"),
        (
            "rate",
            "imagegate: RESOURCE_EXHAUSTED: Rate limit reached for images per minute "
            "(reason rate_limit_exceeded, upstream request req_123; retry after 2.5s)",
        ),
        (
            "policy",
            "imagegate: INVALID_ARGUMENT: Your request was rejected by the safety system. "
            "(reason moderation_blocked, param prompt; upstream request req_456)",
        ),
        (
            "quota",
            "imagegate: RESOURCE_EXHAUSTED: too many images this minute "
            "(quota client:ci: too many images this minute)",
        ),
        (
            "auth",
            "imagegate: UNAUTHENTICATED: missing or unknown token "
            "(pass --token or set IMAGEGATE_TOKEN)",
        ),
        (
            "gap",
            "imagegate: bad answer from {target}: image 0: slice at offset 20, expected 10 "
            "(a gap in the stream)",
        ),
        ("no-result", "imagegate: bad answer from {target}: the stream ended without a result"),
    ],
)
async def test_errors_are_one_line(
    prompt: str,
    expected: str,
    target: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IMAGEGATE_TOKEN", raising=False)
    code, out, err = await run_cli(
        ["generate", prompt, "-o", str(tmp_path / "x.png"), "--target", target], capsys
    )
    assert code == 1
    assert err == expected.format(target=target) + "\n"
    assert out == ""
    assert not (tmp_path / "x.png").exists()


async def test_unreachable_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = await run_cli(
        ["generate", "p", "-o", str(tmp_path / "x.png"), "--target", f"127.0.0.1:{port}"], capsys
    )
    assert code == 1
    assert err == f"imagegate: UNAVAILABLE: could not reach 127.0.0.1:{port} (connection refused)\n"


async def test_deadline(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await run_cli(
        ["generate", "slow", "-o", str(tmp_path / "x.png"), "--target", target, "--timeout", "0.3"],
        capsys,
    )
    assert code == 1
    assert (
        err
        == f"imagegate: DEADLINE_EXCEEDED: no answer from {target} within 0.3s (raise --timeout)\n"
    )


async def test_token_and_success_path(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bearer token travels as metadata; slices are reassembled; partials saved."""
    monkeypatch.setenv("IMAGEGATE_TOKEN", "s3cret")
    out_path = tmp_path / "x"
    code, out, err = await run_cli(
        ["generate", "auth", "-o", str(out_path), "--target", target, "--save-partials"], capsys
    )
    assert code == 0, err
    assert (tmp_path / "x.png").read_bytes() == IMAGE  # extension from the magic bytes
    assert (tmp_path / "x.partial-1.png").read_bytes() == IMAGE
    assert out == f"{tmp_path / 'x.png'}\n"
    lines = err.splitlines()
    assert lines[0].startswith(
        f"partial image 1 (image 1): {tmp_path / 'x.partial-1.png'} (40x30 png"
    )
    assert lines[1].startswith(f"image 1: {tmp_path / 'x.png'} (40x30 png, ")
    assert "  revised prompt: a better prompt" in lines
    assert "usage: 5 input + 7 output = 12 tokens" in lines
    assert lines[-1].startswith("done in ")


async def test_quiet_prints_only_paths(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run_cli(
        ["generate", "ok", "-o", str(tmp_path / "x.png"), "--target", target, "-q"], capsys
    )
    assert (code, out, err) == (0, f"{tmp_path / 'x.png'}\n", "")


def test_a_multi_line_error_message_is_printed_as_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The catch-all quotes exception text, which may span lines (e.g. a parser's).
    from imagegate_server.client.command import _fail

    assert _fail("imagegate: unexpected error: ValueError: first\n  second\n") == 1
    assert capsys.readouterr().err == "imagegate: unexpected error: ValueError: first second\n"


def test_an_upload_status_lost_by_the_grpc_client_is_explained() -> None:
    # grpc/grpc#36066: the asyncio client can swap the gateway's answer to an upload it
    # ended early for this INTERNAL; a bare "Internal error from Core" helps nobody.
    from imagegate_server.client.errors import LOST_UPLOAD_STATUS, describe_rpc_error

    lost = grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(), LOST_UPLOAD_STATUS
    )
    line = describe_rpc_error(lost, target="127.0.0.1:1", timeout=5, token_given=False)
    assert line.startswith("imagegate: INTERNAL: the gateway ended the call during the upload")
    assert "grpc/grpc#36066" in line and "\n" not in line
