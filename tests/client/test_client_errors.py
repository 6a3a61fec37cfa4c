"""Failed calls -> one line and exit code 1.

Statuses come from the real gateway on the real emulator wherever one of them can
produce it: bad input the gateway refuses, and upstream errors made with the
emulator's faults (see README "Faults"). A small test double of the gateway's
answers on 127.0.0.1:0 covers only what no real path produces today; each such
case says why. The client under test is the real CLI, run through
``imagegate_server.cli.main``.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from client_support import NEWER_MODEL, OPENAI_KEY, gateway_on_emulator
from gateway.tenancy_support import ClientsFile
from imagegate.v1 import images_service_pb2, images_service_pb2_grpc, results_pb2
from support.images import png, write_png

from imagegate_server.cli import main
from imagegate_server.clients.tokens import generate
from imagegate_server.emulator import Emulator

IMAGE = png(40, 30)


class Servicer(images_service_pb2_grpc.ImagesServiceServicer):
    """Answers CreateImageStream according to the prompt, for what no real path produces.

    (Quotas and the gateway's own refusals of callers are the real gateway's: see
    ``test_tenant_errors_are_one_line``.)
    ``auth``: a bare UNAUTHENTICATED without google.rpc details, as an authenticating
    proxy in front of the gateway answers; the gateway's own carry an ErrorInfo, so
    only this path shows the CLI's "pass --token" hint. It also checks the token.
    ``gap``, ``no-result``: contract violations the real gateway never commits.
    The default answer has exact bytes, slices, a partial, a revised prompt and usage
    together for the success-path checks: the real gateway slices at its own size, and
    no model answers with a partial image and a revised prompt at once (the real
    successes are test_client_end_to_end's).
    """

    async def CreateImageStream(  # type: ignore[override]
        self,
        request: images_service_pb2.CreateImageStreamRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[images_service_pb2.CreateImageStreamResponse]:
        prompt = request.parameters.prompt
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


async def refused_generate(
    target: str, extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    """``imagegate generate p ... EXTRA`` that fails: exit 1, nothing on stdout, no
    file written; returns stderr."""
    code, out, err = await run_cli(
        ["generate", "p", "-o", str(tmp_path / "x.png"), "--target", target, *extra], capsys
    )
    assert code == 1
    assert out == ""
    assert not (tmp_path / "x.png").exists()
    return err


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[tuple[str, Emulator]]:
    # No retries, so each fault below is one upstream request and its own answer;
    # retired models refused as they are in front of api.openai.com.
    async with gateway_on_emulator(max_retries=0, refuse_retired_models="on") as running:
        yield running


@pytest.fixture
def emulator(gateway: tuple[str, Emulator]) -> Iterator[Emulator]:
    _, running = gateway
    running.set_faults("")
    running.journal.clear()
    yield running
    running.set_faults("")


GENERATIONS = "/v1/images/generations"
# (emulator fault, extra arguments, the line as a pattern; {rid} is the upstream
# request id the emulator gave that call, and MESSAGE stands for the status message).
GATEWAY_ERRORS = [
    pytest.param(
        "", ["-n", "11"], r"INVALID_ARGUMENT: MESSAGE \(field n\)", id="gateway-validation"
    ),
    pytest.param(
        "",
        ["--model", NEWER_MODEL, "-n", "12"],  # not validated locally: OpenAI's 400 comes back
        r"INVALID_ARGUMENT: MESSAGE \(reason integer_above_max_value, param n, "
        r"upstream request {rid}; field n\)",
        id="upstream-400-with-param",
    ),
    pytest.param(
        "",
        ["--model", "gpt-image2"],  # a typo: refused upstream, as OpenAI refuses it
        r"NOT_FOUND: The model `gpt-image2` does not exist or you do not have access to it\. "
        r"\(reason model_not_found, upstream request {rid}\)",
        id="unknown-model",
    ),
    pytest.param(
        "",
        ["--model", "dall-e-3"],
        r"NOT_FOUND: MESSAGE \(reason MODEL_RETIRED, model dall-e-3, replacement [^,]+, "
        r"shutdown_date 2026-05-12\)",
        id="retired-model",
    ),
    pytest.param(
        "429;retry-after-ms=2500",
        [],
        r"RESOURCE_EXHAUSTED: Rate limit reached for images per minute\.MESSAGE "
        r"\(reason rate_limit_exceeded, upstream request {rid}; retry after 2\.5s\)",
        id="rate-limit",
    ),
    pytest.param(
        "quota",
        [],
        r"RESOURCE_EXHAUSTED: MESSAGE \(reason insufficient_quota, upstream request {rid}\)",
        id="insufficient-quota",
    ),
    pytest.param(
        "moderation",
        [],
        r"INVALID_ARGUMENT: Your request was rejected by the safety system\.MESSAGE "
        r"\(reason moderation_blocked, upstream request {rid}\)",
        id="moderation",
    ),
    pytest.param(
        "401",
        [],
        r"INTERNAL: MESSAGE \(reason UPSTREAM_AUTHENTICATION, upstream request {rid}\)",
        id="upstream-key-rejected",
    ),
    pytest.param(
        "404",
        [],
        r"NOT_FOUND: MESSAGE \(reason model_not_found, upstream request {rid}\)",
        id="not-found",
    ),
    pytest.param(
        "503",
        [],
        r"UNAVAILABLE: MESSAGE \(reason server_error, upstream request {rid}\)",
        id="server-error",
    ),
    pytest.param(
        "stream-moderation;after=1",
        ["--model", "gpt-image-2", "--partial-images", "1"],
        r"INVALID_ARGUMENT: MESSAGE \(reason moderation_blocked, upstream request {rid}\)",
        id="error-event-mid-stream",
    ),
    pytest.param(
        "reset;after=64",
        [],
        r"UNAVAILABLE: the upstream stream broke \(upstream request {rid}\)",
        id="reset",
    ),
]


@pytest.mark.parametrize(("fault", "extra", "pattern"), GATEWAY_ERRORS)
async def test_gateway_errors_are_one_line(
    fault: str,
    extra: list[str],
    pattern: str,
    gateway: tuple[str, Emulator],
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, _ = gateway
    emulator.set_faults(fault)
    err = await refused_generate(target, extra, tmp_path, capsys)
    calls = emulator.journal.by_path(GENERATIONS)
    # Local validation costs nothing upstream; otherwise exactly one request went up.
    rid = re.escape(calls[0].request_id) if calls else "NONE"
    assert len(calls) == (0 if "{rid}" not in pattern else 1)
    *progress, line = err.splitlines()
    assert all(text.startswith("partial image ") for text in progress)  # stream case only
    # The status message is the gateway's (or OpenAI's) prose: any text without the
    # parentheses that open the details; everything the CLI composes is exact.
    expected = "imagegate: " + pattern.replace("MESSAGE", r"[^()\n]*").format(rid=rid)
    assert re.fullmatch(expected, line), line
    assert OPENAI_KEY not in err


@pytest.fixture(scope="module")
async def tenant_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[str, Emulator, dict[str, str]]]:
    """A real gateway with a clients file: (target, emulator, token by client name).

    ``ci`` may make one image a minute, so a call for two can never pass (and no
    call of this module uses up its minute); ``once`` may too, and one test does use
    up its minute; ``open`` has no limits; ``unknown`` is a well-formed token that the
    file does not hold.
    """
    clients = ClientsFile(tmp_path_factory.mktemp("tenants") / "clients.toml")
    tokens = {
        "ci": clients.add("ci", images_per_minute=1),
        "once": clients.add("once", images_per_minute=1),
        "open": clients.add("open"),
        "unknown": generate().token,
    }
    async with gateway_on_emulator(clients_file=clients.path, max_retries=0) as (target, running):
        yield target, running, tokens


# (client whose token the CLI passes, or none; extra arguments; the line as a pattern).
TENANT_ERRORS = [
    pytest.param(
        "ci",
        ["-n", "2"],
        # Said once: the QuotaFailure restates the message for programs, not for people.
        r"RESOURCE_EXHAUSTED: images_per_minute: 1 per minute \(burst 1\) for client 'ci'; "
        r"this call needs 2, more than the burst, so it can never pass",
        id="quota",
    ),
    pytest.param(None, [], r"UNAUTHENTICATED: [^()\n]+ \(reason UNAUTHENTICATED\)", id="no-token"),
    pytest.param(
        "unknown",
        [],
        r"UNAUTHENTICATED: [^()\n]+ \(reason UNAUTHENTICATED\)",
        id="unknown-token",
    ),
]


@pytest.mark.parametrize(("client", "extra", "pattern"), TENANT_ERRORS)
async def test_tenant_errors_are_one_line(
    client: str | None,
    extra: list[str],
    pattern: str,
    tenant_gateway: tuple[str, Emulator, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, emulator, tokens = tenant_gateway
    monkeypatch.delenv("IMAGEGATE_TOKEN", raising=False)
    token = tokens[client] if client else None
    emulator.journal.clear()
    err = await refused_generate(
        target, [*extra, *(["--token", token] if token else [])], tmp_path, capsys
    )
    assert emulator.journal.entries == []  # refused before anything went upstream
    assert re.fullmatch("imagegate: " + pattern + "\n", err), err
    assert all(secret not in err for secret in tokens.values())


async def test_a_rate_refusal_says_its_reason_and_wait_once(
    tenant_gateway: tuple[str, Emulator, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The gateway states limit, client and wait in the message, and again in
    # QuotaFailure and RetryInfo for programs: the line says each once.
    target, _, tokens = tenant_gateway
    first, _, err = await run_cli(
        ["generate", "p", "-o", str(tmp_path / "first.png"), "-q", "--target", target,
         "--token", tokens["once"]],
        capsys,
    )  # fmt: skip
    assert first == 0, err
    err = await refused_generate(target, ["--token", tokens["once"]], tmp_path, capsys)
    pattern = (
        r"imagegate: RESOURCE_EXHAUSTED: images_per_minute: 1 per minute \(burst 1\) for "
        r"client 'once'; retry in \d+(\.\d)? s\n"
    )
    assert re.fullmatch(pattern, err), err


async def test_a_token_reaches_the_real_gateway(
    tenant_gateway: tuple[str, Emulator, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bearer token travels as metadata: the gateway lets its client's call through."""
    target, emulator, tokens = tenant_gateway
    monkeypatch.setenv("IMAGEGATE_TOKEN", tokens["open"])
    emulator.journal.clear()
    code, out, err = await run_cli(
        ["generate", "p", "-o", str(tmp_path / "x.png"), "--target", target], capsys
    )
    assert code == 0, err
    assert out == f"{tmp_path / 'x.png'}\n"
    assert len(emulator.journal.by_path(GENERATIONS)) == 1


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
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
async def test_errors_no_real_path_produces_are_one_line(
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


async def test_a_target_without_a_port_says_which_port_was_tried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # gRPC connects to 443 when a target names no port, not to the gateway's 50051.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 443)) == 0:
            pytest.skip("something listens on 127.0.0.1:443 here")
    code, _, err = await run_cli(
        ["generate", "p", "-o", str(tmp_path / "x.png"), "--target", "127.0.0.1"], capsys
    )
    assert code == 1
    assert err == (
        "imagegate: UNAVAILABLE: could not reach 127.0.0.1:443 (connection refused); the "
        "target names no port and gRPC's default is 443 (the gateway's is 50051)\n"
    )


async def test_deadline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A server that accepts the connection and never answers, as a hung gateway does:
    # only the CLI's own deadline can end the call, so the line is the CLI's.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        code, _, err = await run_cli(
            [
                "generate",
                "p",
                "-o",
                str(tmp_path / "x.png"),
                "--target",
                target,
                "--timeout",
                "0.3",
            ],
            capsys,
        )
    assert code == 1
    assert (
        err
        == f"imagegate: DEADLINE_EXCEEDED: no answer from {target} within 0.3s (raise --timeout)\n"
    )


async def test_a_generation_slower_than_the_deadline(
    gateway: tuple[str, Emulator],
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, _ = gateway
    emulator.set_faults("latency;ms=20000")
    code, _, err = await run_cli(
        ["generate", "p", "-o", str(tmp_path / "x.png"), "--target", target, "--timeout", "0.5"],
        capsys,
    )
    assert code == 1
    # The gateway's timer and the CLI's fire together: whichever status arrives first
    # (the gateway's, naming the upstream request, or the CLI's own) is the one line.
    assert err.count("\n") == 1
    assert err.startswith("imagegate: DEADLINE_EXCEEDED: ")
    assert not (tmp_path / "x.png").exists()


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
    from imagegate_server.client.command import fail

    assert fail("imagegate: unexpected error: ValueError: first\n  second\n") == 1
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


async def test_an_upload_the_gateway_refuses_at_once_reports_its_real_status(
    gateway: tuple[str, Emulator],
    emulator: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # vary defaults to dall-e-2, refused before any upload byte. The CLI waits for the
    # gateway's go-ahead before sending files, so grpc's asyncio client cannot lose
    # the refusal (grpc/grpc#36066: 29 of 40 were lost without the wait).
    target, _ = gateway
    image = write_png(tmp_path / "in.png", 512, 512)
    for _ in range(20):
        code, _, err = await run_cli(
            ["vary", str(image), "-o", str(tmp_path / "out"), "--target", target, "-q"], capsys
        )
        assert code == 1
        assert err.startswith("imagegate: NOT_FOUND"), err
    assert emulator.journal.entries == []
