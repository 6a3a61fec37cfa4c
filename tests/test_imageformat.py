"""Header sniffing against images Pillow writes, and against arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from support.images import encode

from imagegate_server.imageformat import HEADER_BYTES, read_image_info, sniff_format


@pytest.mark.parametrize(
    ("mode", "fmt", "options", "expected_format", "alpha"),
    [
        ("RGB", "PNG", {}, "png", False),
        ("RGBA", "PNG", {}, "png", True),
        ("L", "PNG", {}, "png", False),
        ("LA", "PNG", {}, "png", True),
        ("RGB", "JPEG", {"quality": 80}, "jpeg", False),
        ("L", "JPEG", {"progressive": True}, "jpeg", False),
        ("RGB", "WEBP", {"quality": 80}, "webp", False),
        ("RGB", "WEBP", {"lossless": True}, "webp", False),
        ("RGBA", "WEBP", {"lossless": True}, "webp", True),
        ("RGBA", "WEBP", {"quality": 50}, "webp", True),
        ("RGB", "GIF", {}, "gif", None),
    ],
)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (37, 211), (1024, 640)])
def test_reads_what_pillow_writes(
    mode: str,
    fmt: str,
    options: dict[str, object],
    expected_format: str,
    alpha: bool | None,
    width: int,
    height: int,
) -> None:
    data = encode(Image.new(mode, (width, height)), fmt, **options)
    info = read_image_info(data[:HEADER_BYTES])
    assert info is not None
    assert info.format == expected_format
    assert (info.width, info.height) == (width, height)
    assert info.has_alpha is alpha


def test_palette_png_with_trns_has_alpha() -> None:
    image = Image.new("P", (8, 8))
    image.info["transparency"] = 0
    info = read_image_info(encode(image, "PNG", transparency=0))
    assert info is not None and info.has_alpha is True and info.png_colour_type == 3


def test_jpeg_with_large_exif_before_sof() -> None:
    exif = Image.Exif()
    exif[0x010E] = "x" * 20000  # ImageDescription: pushes SOF ~20 KB into the file
    data = encode(Image.new("RGB", (300, 200)), "JPEG", exif=exif.tobytes())
    info = read_image_info(data[:HEADER_BYTES])
    assert info is not None and (info.width, info.height) == (300, 200)


@pytest.mark.parametrize("data", [b"", b"hello", b"%PDF-1.7", b"<svg/>", b"RIFF\0\0\0\0AVI "])
def test_non_images(data: bytes) -> None:
    assert sniff_format(data) is None
    assert read_image_info(data) is None


@given(st.binary(max_size=256))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    info = read_image_info(data)
    if info is not None:
        assert info.width is None or info.width > 0
        assert info.height is None or info.height > 0


_SAMPLES = [
    encode(Image.new("RGBA", (64, 48)), "PNG"),
    encode(Image.new("RGB", (64, 48)), "JPEG"),
    encode(Image.new("RGBA", (64, 48)), "WEBP"),
    encode(Image.new("RGB", (64, 48)), "WEBP", lossless=True),
    encode(Image.new("RGB", (64, 48)), "GIF"),
]


@given(
    st.sampled_from(_SAMPLES),
    st.integers(min_value=0, max_value=400),
    st.binary(max_size=16),
    st.integers(min_value=0, max_value=400),
)
def test_corrupted_headers_never_raise(sample: bytes, cut: int, noise: bytes, at: int) -> None:
    corrupted = sample[:at] + noise + sample[at + len(noise) :]
    for data in (sample[:cut], corrupted):
        info = read_image_info(data)
        assert info is None or info.format == sniff_format(data)
