"""What validation finds: violations with OpenAI-like codes, and how files are described."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from imagegate_server.imageformat import ImageInfo


class Code(enum.StrEnum):
    """OpenAI-like ``error.code`` values."""

    INVALID_VALUE = "invalid_value"
    INVALID_TYPE = "invalid_type"
    UNKNOWN_PARAMETER = "unknown_parameter"
    MISSING_REQUIRED_PARAMETER = "missing_required_parameter"
    EMPTY_STRING = "empty_string"
    STRING_ABOVE_MAX_LENGTH = "string_above_max_length"
    INTEGER_BELOW_MIN_VALUE = "integer_below_min_value"
    INTEGER_ABOVE_MAX_VALUE = "integer_above_max_value"
    ARRAY_ABOVE_MAX_LENGTH = "array_above_max_length"
    INVALID_IMAGE_FORMAT = "invalid_image_format"
    UNSUPPORTED_FILE_MIMETYPE = "unsupported_file_mimetype"
    IMAGE_TOO_LARGE = "image_too_large"
    INVALID_IMAGE_DIMENSIONS = "invalid_image_dimensions"


@dataclass(frozen=True)
class Violation:
    """One broken rule: the OpenAI ``param`` it concerns, a message, an OpenAI-like code."""

    param: str
    message: str
    code: Code


@dataclass(frozen=True)
class FileDescriptor:
    """An uploaded file as validation sees it."""

    param: str
    """The name violations should carry: ``image``, ``image[2]``, ``images[0].image_url``..."""
    size: int
    """Byte size of the whole file."""
    info: ImageInfo | None
    """From :func:`imageformat.read_image_info` on its first bytes; None if not an image."""
    content_type: str | None = None
    """The declared multipart content type; None when not applicable (JSON, gateway)."""


class UnknownModelPolicy(enum.Enum):
    PASS_THROUGH = "pass_through"  # noqa: S105 (not a secret)
    """Gateway: a model the table does not know is OpenAI's to judge; no violations."""
    GPT_LIKE = "gpt_like"
    """Emulator: judge a model it serves beyond the table (its ``extra_models``; any other
    it refuses before validating) by the most permissive GPT image model's rules."""
