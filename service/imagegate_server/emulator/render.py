"""Real images made with Pillow, deterministic in (prompt, model, size, index).

Each image shows shapes and colours seeded by the prompt, the prompt's words, and a
footer with model, size and index. Its identity (sha256 of prompt and index) is
embedded as metadata: a PNG ``tEXt`` chunk, a JPEG/GIF comment, WebP XMP, an SVG
``<metadata>`` element; :func:`read_identity` reads it back, and :func:`stamp` writes
it into a cached template. Which picture each operation gets is :mod:`.renderer`'s.

Cost, measured on a 2-core machine at 1024x1024 (one image, one thread): cold PNG
~70 ms (zlib level 1), JPEG ~30 ms, WebP ~85 ms, 9-frame GIF ~260 ms, SVG ~15 ms.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

IDENTITY_KEY = "imagegate-identity"
# Same length as a sha256 hex digest, so stamping a template is a same-size replace.
PLACEHOLDER = ("imagegate-placeholder-" + "x" * 64)[:64]
"""The identity cached templates carry until :func:`stamp` replaces it."""
_XMP_TEMPLATE = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description xmlns:imagegate="https://imagegate.invalid/ns/" '
    'imagegate:identity="{identity}"/></rdf:RDF></x:xmpmeta>'
)


@dataclass(frozen=True)
class RenderSpec:
    prompt: str
    model: str
    width: int
    height: int
    index: int
    output_format: str = "png"
    """png, jpeg, webp, gif or svg."""
    transparent: bool = False
    compression: int = 100
    frame_count: int = 9
    frame_duration_ms: int = 200
    quality: str = "medium"
    """Only real-sized pictures depend on it (higher qualities carry more detail)."""

    @property
    def identity(self) -> str:
        return identity(self.prompt, self.index)


def identity(prompt: str, index: int) -> str:
    """What a load test recomputes to check that a caller got its own image."""
    return hashlib.sha256(f"{prompt}\x00{index}".encode()).hexdigest()


def read_identity(data: bytes) -> str | None:
    """The identity embedded by this module, from any of the five formats."""
    match = re.search(rb"imagegate[-:]identity[\x00=\"]+([0-9a-f]{64})", data)
    return match.group(1).decode() if match else None


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _palette(seed: bytes) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)  # noqa: S311 - pictures, not secrets
    return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(12)]


def scene_seed(spec: RenderSpec) -> bytes:
    """What a picture's colours, shapes and texture are drawn from."""
    return hashlib.sha256(f"{spec.prompt}\x00{spec.model}\x00{spec.index}".encode()).digest()


def draw_scene(spec: RenderSpec, *, with_text: bool = True) -> Image.Image:
    """The RGBA picture for ``spec`` (before encoding)."""
    width, height = spec.width, spec.height
    seed = scene_seed(spec)
    colours = _palette(seed)
    rng = random.Random(seed[16:])  # noqa: S311 - pictures, not secrets
    if spec.transparent:
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    else:
        gradient = Image.linear_gradient("L").resize((width, height))
        image = ImageOps.colorize(gradient, colours[0], colours[1]).convert("RGBA")
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    for shape in range(8):
        x = rng.randrange(width)
        y = rng.randrange(height)
        radius = max(2, int(unit * (0.08 + rng.random() * 0.2)))
        box = (x - radius, y - radius, x + radius, y + radius)
        fill = (*colours[2 + shape % 10], 255)
        if shape % 3 == 0:
            draw.ellipse(box, fill=fill)
        elif shape % 3 == 1:
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon(
                [(x, y - radius), (x + radius, y + radius), (x - radius, y + radius)], fill=fill
            )
    if with_text:
        draw_words(draw, spec)
    return image


def draw_words(draw: ImageDraw.ImageDraw, spec: RenderSpec) -> None:
    """The prompt's first words, and a footer with model, size and index."""
    width, height = spec.width, spec.height
    font_size = max(8, min(width, height) // 14)
    font = _font(font_size)
    words = spec.prompt.split()[:40]
    lines: list[str] = []
    line = ""
    max_chars = max(4, int(width / (font_size * 0.6)))
    for word in words:
        candidate = f"{line} {word}".strip()
        if len(candidate) > max_chars and line:
            lines.append(line)
            line = word[:max_chars]
        else:
            line = candidate[: max_chars * 2]
    if line:
        lines.append(line)
    y = font_size
    for text in lines[: max(1, (height - 3 * font_size) // (font_size + 4))]:
        draw.text(
            (font_size // 2, y),
            text,
            font=font,
            fill="white",
            stroke_width=max(1, font_size // 12),
            stroke_fill="black",
        )
        y += font_size + 4
    draw_footer(draw, spec)


def draw_footer(draw: ImageDraw.ImageDraw, spec: RenderSpec) -> None:
    """A small line with model, size and index, at the bottom left."""
    width, height = spec.width, spec.height
    unit = min(width, height)
    footer = f"{spec.model} {width}x{height} #{spec.index}"
    small = _font(max(8, unit // 32))
    draw.text(
        (max(8, unit // 14) // 2, height - unit // 20 - 4),
        footer,
        font=small,
        fill="white",
        stroke_width=1,
        stroke_fill="black",
    )


def encode(image: Image.Image, spec: RenderSpec, ident: str) -> bytes:
    """Encode ``image`` in the requested format with the identity as metadata."""
    fmt = spec.output_format
    out = io.BytesIO()
    if fmt == "png":
        info = PngInfo()
        info.add_text(IDENTITY_KEY, ident)
        image.save(out, "PNG", pnginfo=info, compress_level=1)
    elif fmt == "jpeg":
        image.convert("RGB").save(
            out,
            "JPEG",
            quality=max(1, min(95, spec.compression)),
            comment=f"{IDENTITY_KEY}={ident}",
        )
    elif fmt == "webp":
        image.save(
            out,
            "WEBP",
            quality=spec.compression,
            method=0,
            xmp=_XMP_TEMPLATE.format(identity=ident).encode(),
        )
    elif fmt == "gif":
        frames = [
            ImageChops.offset(image, i * spec.width // max(1, spec.frame_count), 0)
            .convert("RGB")
            .quantize(64, method=Image.Quantize.FASTOCTREE)
            for i in range(spec.frame_count)
        ]
        frames[0].save(
            out,
            "GIF",
            save_all=True,
            append_images=frames[1:],
            duration=spec.frame_duration_ms,
            loop=0,
            comment=f"{IDENTITY_KEY}={ident}".encode(),
        )
    elif fmt == "svg":
        return _svg(spec, ident)
    else:  # validation only lets the five formats through
        raise ValueError(f"unsupported output format {fmt!r}")
    return out.getvalue()


def _svg(spec: RenderSpec, ident: str) -> bytes:
    colours = _palette(scene_seed(spec))
    rng = random.Random(ident)  # noqa: S311 - pictures, not secrets
    shapes = "".join(
        f'<circle cx="{rng.randrange(spec.width)}" cy="{rng.randrange(spec.height)}" '
        f'r="{spec.width // 8}" fill="rgb{colours[2 + i]}"/>'
        for i in range(6)
    )
    words = " ".join(spec.prompt.split()[:12])
    text = words.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    background = (
        "" if spec.transparent else f'<rect width="100%" height="100%" fill="rgb{colours[0]}"/>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{spec.width}" height="{spec.height}" '
        f'viewBox="0 0 {spec.width} {spec.height}"><metadata>{IDENTITY_KEY}={ident}</metadata>'
        f'{background}{shapes}<text x="10" y="{spec.height // 10}" font-size="{spec.height // 16}" '
        f'fill="white">{text}</text></svg>'
    ).encode()


def stamp(template: bytes, ident: str, fmt: str) -> bytes:
    """Replace the placeholder identity; fix the PNG chunk CRC (the only checksummed one)."""
    at = template.find(PLACEHOLDER.encode())
    data = bytearray(template)
    data[at : at + 64] = ident.encode()
    if fmt == "png":
        start = template.rfind(b"tEXt", 0, at) - 4
        (length,) = struct.unpack(">I", data[start : start + 4])
        end = start + 8 + length
        data[end : end + 4] = struct.pack(">I", zlib.crc32(data[start + 4 : end]))
    return bytes(data)
