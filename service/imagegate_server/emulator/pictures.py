"""Uploaded images decoded once, while the job is built.

Header sniffing (:mod:`imagegate_server.imageformat`) accepts any file whose first
bytes look like an image; only a full decode finds a truncated or corrupt body.
OpenAI answers such files with a 400, so the emulator decodes them before it answers
anything: a failure at render time would surface as a 500.
"""

from __future__ import annotations

import io

from PIL import Image

from imagegate_server.emulator.errors import ApiError, bad_request
from imagegate_server.emulator.parsing import Upload

INVALID_IMAGE_FILE = "invalid_image_file"
"""OpenAI's code for an image it cannot decode."""


def decode_picture(upload: Upload, param: str) -> Image.Image:
    """The upload's first frame as RGBA, or OpenAI's 400 for ``param``."""
    try:
        with Image.open(io.BytesIO(upload.data)) as opened:
            opened.seek(0)
            return opened.convert("RGBA")  # convert() forces the full decode
    # Pillow's decoders raise many types on hostile input (OSError, SyntaxError,
    # ValueError, struct.error, DecompressionBombError...); all mean "cannot decode".
    except Exception:
        raise _unreadable(param) from None


def _unreadable(param: str) -> ApiError:
    return bad_request(
        f"Invalid image file for '{param}': the image data is truncated or corrupt; "
        "please check your image file.",
        param,
        INVALID_IMAGE_FILE,
    )
