"""``imagegate demo``: the whole product on one machine, offline, in a few seconds.

Starts the gateway on a free loopback port with no OpenAI key (so it serves from
the embedded emulator), then makes images through the gRPC path with the
generated stubs: a generation, a streamed generation with partial images, an
edit of the first image, and a stored generation (its link printed, then fetched
with a plain GET from the local result store). Writes every image under ``--out``
and says where.
"""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagegate.v1 import images_service_pb2 as pb
from imagegate.v1 import params_pb2

from imagegate_server import logs
from imagegate_server.client.fetch import result_images
from imagegate_server.wording import plural

if TYPE_CHECKING:
    from imagegate.v1 import images_service_pb2_grpc

    from imagegate_server.settings import Settings

# gRPC, Pillow, the gateway and its settings are imported where they are used:
# cli.py imports this module for --help.

CHUNK = 64 * 1024
# What the demo asks for, printed exactly as sent (a reader compares the two).
LIGHTHOUSE = "a lighthouse on a cliff at dusk"
BOAT = "a paper boat on a pond"
MOON = "add a full moon"
HARBOUR = "a harbour at dawn"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the gateway on its embedded emulator and make images through gRPC"
    )
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imagegate_server.settings import Settings

    # The demo is offline by definition: arguments outrank every settings source,
    # so no key from the environment, .env or the secrets directory applies, and
    # neither .env nor the secrets directory is read at all.
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        _secrets_dir=None,
        openai_api_key=None,
        openai_api_key_file=None,
        host="127.0.0.1",
        port=0,
        store_http_port=0,  # the link port: a free one, beside any gateway already running
        shutdown_grace_s=1,
    )
    logs.configure("WARNING")
    args.out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_demo(settings, args.out))


async def _demo(settings: Settings, out: Path) -> int:
    import grpc
    from imagegate.v1 import images_service_pb2_grpc

    from imagegate_server.gateway.server import Gateway

    gateway = Gateway(settings)
    await gateway.start()
    # Settings cannot name a key now; this guards the promise against future sources.
    assert gateway.emulator is not None, "the demo must run on the embedded emulator"
    target = f"127.0.0.1:{gateway.port}"
    print(f"imagegate is serving on {target} (upstream: the embedded emulator, offline)")
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = images_service_pb2_grpc.ImagesServiceStub(channel)
            written = await _make_images(stub, out)
    finally:
        await gateway.stop(1)
    print(f"\n{plural(len(written), 'image')} written through the gRPC path:")
    for path in written:
        print(f"  {path}  ({path.stat().st_size} bytes)")
    return 0


async def _make_images(
    stub: images_service_pb2_grpc.ImagesServiceAsyncStub, out: Path
) -> list[Path]:
    written: list[Path] = []

    print(f"CreateImage: 2 images of {LIGHTHOUSE!r} ...")
    reply = await stub.CreateImage(
        pb.CreateImageRequest(
            parameters=params_pb2.GenerationParameters(prompt=LIGHTHOUSE, model="gpt-image-2", n=2)
        )
    )
    for index, image in enumerate(reply.result.images):
        written.append(_write(out / f"lighthouse-{index + 1}.png", image.data))
    usage = reply.result.usage
    print(f"  usage: {usage.input_tokens} input + {usage.output_tokens} output tokens")

    print(f"CreateImageStream: {BOAT!r}, with 2 partial images ...")
    images: dict[tuple[int, int | None], bytearray] = {}
    async for event in stub.CreateImageStream(
        pb.CreateImageStreamRequest(
            parameters=params_pb2.GenerationParameters(
                prompt=BOAT, model="gpt-image-2", partial_images=2
            )
        )
    ):
        if event.WhichOneof("event") == "image_chunk":
            chunk = event.image_chunk
            partial = chunk.partial_image_index if chunk.HasField("partial_image_index") else None
            images.setdefault((chunk.image_index, partial), bytearray()).extend(chunk.data)
            if chunk.last:
                kind = "final image" if partial is None else f"partial image {partial}"
                print(f"  received {kind}")
    for (index, partial), data in sorted(images.items(), key=lambda kv: (kv[0][1] is None, kv[0])):
        name = f"boat-{index + 1}" + ("" if partial is None else f"-partial-{partial}")
        written.append(_write(out / f"{name}.png", bytes(data)))

    print(
        f"CreateImageEdit: {MOON!r} to the first lighthouse, where its mask is transparent "
        "(image and mask streamed up in 64 KiB chunks) ..."
    )
    source = reply.result.images[0].data
    mask = _mask(source)

    async def upload() -> Any:
        yield pb.CreateImageEditRequest(
            parameters=params_pb2.EditParameters(
                prompt=MOON,
                model="gpt-image-2",
                images=[params_pb2.FileInfo(filename="lighthouse.png", size_bytes=len(source))],
                mask=params_pb2.FileInfo(filename="mask.png", size_bytes=len(mask)),
            )
        )
        for role, data in ((params_pb2.FILE_ROLE_IMAGE, source), (params_pb2.FILE_ROLE_MASK, mask)):
            for offset in range(0, len(data), CHUNK):
                yield pb.CreateImageEditRequest(
                    chunk=params_pb2.FileChunk(role=role, data=data[offset : offset + CHUNK])
                )

    edited = await stub.CreateImageEdit(upload())
    written.append(_write(out / "lighthouse-edited.png", edited.result.images[0].data))

    print(
        f"CreateImage: {HARBOUR!r}, stored (DELIVERY_STORED: the gateway keeps the image "
        "in its result store and answers with a link) ..."
    )
    kept = await stub.CreateImage(
        pb.CreateImageRequest(
            parameters=params_pb2.GenerationParameters(
                prompt=HARBOUR, model="gpt-image-2", delivery=params_pb2.DELIVERY_STORED
            )
        )
    )
    stored = kept.result.images[0].stored
    print(f"  link (a plain GET fetches it until {stored.expires_at.ToJsonString()}):")
    print(f"    {stored.url}")
    (fetched,) = await result_images(kept.result)  # that GET
    written.append(_write(out / "harbour-stored.png", fetched))
    return written


def _mask(image: bytes) -> bytes:
    """Opaque but for a transparent upper-right quarter: the area the edit may change."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as source:
        width, height = source.size
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (width // 2, 0, width, height // 2))
    out = io.BytesIO()
    mask.save(out, "PNG")
    return out.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
