"""Rules on the JSON edit body's image references (``images``/``mask``:
ImageRefParam objects naming an ``image_url`` or a ``file_id``)."""

from __future__ import annotations

from collections.abc import Mapping

from imagegate_server.validation.checker import Checker
from imagegate_server.validation.results import Code

MAX_REFERENCED_IMAGES = 16
MAX_IMAGE_URL_CHARS = 20_971_520


def check_image_references(checker: Checker) -> None:
    images = checker.params.get("images")
    if images is None:
        checker.add(
            "images", "Missing required parameter: 'images'.", Code.MISSING_REQUIRED_PARAMETER
        )
    elif not isinstance(images, list):
        checker.add("images", "Invalid type for 'images': expected an array.", Code.INVALID_TYPE)
    elif not images:
        checker.add("images", "Invalid 'images': expected at least 1 image.", Code.INVALID_VALUE)
    elif len(images) > MAX_REFERENCED_IMAGES:
        checker.add(
            "images",
            f"Invalid 'images': array too long. Expected at most {MAX_REFERENCED_IMAGES} "
            f"items, got {len(images)}.",
            Code.ARRAY_ABOVE_MAX_LENGTH,
        )
    else:
        for index, ref in enumerate(images):
            _reference(checker, f"images[{index}]", ref)
    mask = checker.params.get("mask")
    if mask is not None:
        _reference(checker, "mask", mask)


def _reference(checker: Checker, param: str, ref: object) -> None:
    if not isinstance(ref, Mapping):
        checker.add(param, f"Invalid type for '{param}': expected an object.", Code.INVALID_TYPE)
        return
    keys = set(ref)
    extra = keys - {"image_url", "file_id"}
    if extra:
        name = sorted(str(key) for key in extra)[0]
        checker.add(
            f"{param}.{name}", f"Unknown parameter: '{param}.{name}'.", Code.UNKNOWN_PARAMETER
        )
    chosen = keys & {"image_url", "file_id"}
    if len(chosen) != 1:
        checker.add(
            param,
            f"Invalid '{param}': provide exactly one of 'image_url' or 'file_id'.",
            Code.INVALID_VALUE,
        )
        return
    (key,) = chosen
    value = ref[key]
    if not isinstance(value, str) or not value:
        checker.add(
            f"{param}.{key}",
            f"Invalid type for '{param}.{key}': expected a string.",
            Code.INVALID_TYPE,
        )
    elif key == "image_url" and len(value) > MAX_IMAGE_URL_CHARS:
        checker.add(
            f"{param}.{key}",
            f"Invalid '{param}.{key}': string too long (at most {MAX_IMAGE_URL_CHARS} characters).",
            Code.STRING_ABOVE_MAX_LENGTH,
        )
