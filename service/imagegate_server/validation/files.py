"""Rules on uploaded files: count, type by magic bytes, declared MIME type, size,
dimensions, and the mask/markup overlay's alpha channel and dimensions.

Files are described, not passed (:class:`FileDescriptor`): the caller sniffs each
upload with :mod:`imagegate_server.imageformat`, so a gateway streaming a 50 MB
upload never needs it whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagegate_server.imageformat import CONTENT_TYPES, ImageInfo
from imagegate_server.models import ModelRules
from imagegate_server.validation.checker import Checker
from imagegate_server.validation.results import Code, FileDescriptor

# Declared multipart types OpenAI accepts per sniffed format: the format's own, plus
# the non-standard image/jpg that browsers and SDKs still send.
_ACCEPTED_CONTENT_TYPES = {
    fmt: frozenset({CONTENT_TYPES[fmt]} | ({"image/jpg"} if fmt == "jpeg" else set()))
    for fmt in ("png", "jpeg", "webp")
}


def check_edit_files(
    checker: Checker,
    rules: ModelRules,
    images: Sequence[FileDescriptor],
    mask: FileDescriptor | None,
    markup: FileDescriptor | None,
    *,
    require_images: bool,
) -> None:
    if not images:
        if require_images:
            checker.add(
                "image", "Missing required parameter: 'image'.", Code.MISSING_REQUIRED_PARAMETER
            )
        return
    if len(images) > rules.max_input_images:
        checker.add(
            "image",
            f"Invalid 'image': too many images. Expected at most {rules.max_input_images}, "
            f"got {len(images)}.",
            Code.ARRAY_ABOVE_MAX_LENGTH,
        )
        return
    for image in images:
        _input_file(
            checker, image, rules.input_image_formats, rules.image_max_bytes, rules.square_png_input
        )
    if mask is not None and markup is not None:
        checker.add("markup", "'markup' cannot be combined with 'mask'.", Code.INVALID_VALUE)
        return
    first = images[0].info
    if mask is not None:
        _overlay(checker, mask, first, rules.mask_max_bytes)
    if markup is not None:
        if "markup" not in rules.edit_params:
            checker.add("markup", "Unknown parameter: 'markup'.", Code.UNKNOWN_PARAMETER)
        else:
            _overlay(checker, markup, first, rules.image_max_bytes)


def _input_file(
    checker: Checker, file: FileDescriptor, formats: frozenset[str], max_bytes: int, square: bool
) -> bool:
    param = file.param
    info = file.info
    allowed_names = " or ".join(sorted(formats))
    if info is None or info.format not in formats:
        checker.add(
            param,
            f"Invalid image file for '{param}': the content must be {allowed_names}.",
            Code.INVALID_IMAGE_FORMAT,
        )
        return False
    if file.content_type is not None and file.content_type not in _ACCEPTED_CONTENT_TYPES.get(
        info.format, frozenset()
    ):
        checker.add(
            param,
            f"Invalid file '{param}': unsupported mimetype ('{file.content_type[:100]}'). "
            f"Supported file formats are {allowed_names}.",
            Code.UNSUPPORTED_FILE_MIMETYPE,
        )
        return False
    if file.size >= max_bytes:
        checker.add(
            param,
            f"Invalid '{param}': the file must be less than {max_bytes // (1024 * 1024)} MB.",
            Code.IMAGE_TOO_LARGE,
        )
        return False
    if info.width is None or info.height is None:
        checker.add(
            param,
            f"Invalid image file for '{param}': unreadable header.",
            Code.INVALID_IMAGE_FORMAT,
        )
        return False
    if square and info.width != info.height:
        checker.add(
            param,
            f"Invalid '{param}': the image must be square, got {info.width}x{info.height}.",
            Code.INVALID_IMAGE_DIMENSIONS,
        )
        return False
    return True


def _overlay(
    checker: Checker, file: FileDescriptor, first: ImageInfo | None, max_bytes: int
) -> None:
    """A mask or markup: a PNG with alpha and the first image's dimensions."""
    if not _input_file(checker, file, frozenset({"png"}), max_bytes, square=False):
        return
    info = file.info
    assert info is not None  # _input_file accepted it
    if not info.has_alpha:
        checker.add(
            file.param,
            f"Invalid '{file.param}': the PNG must have an alpha channel.",
            Code.INVALID_IMAGE_FORMAT,
        )
    elif (
        first is not None
        and first.width is not None
        and (info.width, info.height) != (first.width, first.height)
    ):
        checker.add(
            file.param,
            f"Invalid '{file.param}': dimensions {info.width}x{info.height} differ from "
            f"the image's {first.width}x{first.height}.",
            Code.INVALID_IMAGE_DIMENSIONS,
        )
