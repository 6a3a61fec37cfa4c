"""OpenAI's request rules for the three Images operations, as pure functions.

Both callers use the same functions on an OpenAI-shaped parameter dict:

* the gateway, before going upstream, so a bad request costs nothing (it maps each
  :class:`Violation` to a gRPC ``BadRequest.FieldViolation``);
* the emulator, to answer exactly what OpenAI would (it returns the first violation
  as a 400 ``invalid_request_error``).

Values arrive either as decoded JSON (``form=False``) or as multipart strings
(``form=True``: ``"2"`` for n, ``"true"`` for stream). JSON ``null`` counts as
absent, as the spec's ``nullable`` says. Files are described, not passed: the
caller sniffs each upload with :mod:`imagegate_server.imageformat` and gives a
:class:`FileDescriptor`, so a gateway streaming a 50 MB upload never needs it whole.

Nothing here does I/O or raises on bad input; every problem is a violation.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imagegate_server.imageformat import ImageInfo
from imagegate_server.models import (
    DEFAULT_EDIT_MODEL,
    DEFAULT_GENERATION_MODEL,
    DEFAULT_GPT_GENERATION_MODEL,
    DEFAULT_NEWER_GPT_GENERATION_MODEL,
    DEFAULT_VARIATION_MODEL,
    GPT_LIKE_DEFAULT,
    GPT_ONLY_GENERATION_PARAMS,
    NEWER_GPT_ONLY_GENERATION_PARAMS,
    ModelRules,
    Operation,
    rules_for,
    size_allowed,
)


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
    """Emulator: judge unknown models by the most permissive GPT image model's rules."""


_ALLOWED_MIMETYPES = {
    "png": frozenset({"image/png"}),
    "jpeg": frozenset({"image/jpeg", "image/jpg"}),
    "webp": frozenset({"image/webp"}),
}
_SVG_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})


def resolve_model(operation: Operation, params: Mapping[str, object]) -> str | None:
    """The model a request means (spec defaults applied); None if ``model`` is not a string."""
    model = params.get("model")
    if model is None:
        if operation is Operation.GENERATION:
            if any(params.get(name) is not None for name in NEWER_GPT_ONLY_GENERATION_PARAMS):
                return DEFAULT_NEWER_GPT_GENERATION_MODEL
            if any(params.get(name) is not None for name in GPT_ONLY_GENERATION_PARAMS):
                return DEFAULT_GPT_GENERATION_MODEL
            return DEFAULT_GENERATION_MODEL
        return DEFAULT_EDIT_MODEL if operation is Operation.EDIT else DEFAULT_VARIATION_MODEL
    return model if isinstance(model, str) else None


def parse_integer(value: object, *, form: bool) -> int | None:
    """An integer parameter as validation reads it, or None if it is not one.

    JSON gives ints and integral floats (``2.0``); forms give decimal strings. Callers
    that act on a validated request use this too, so they read what was validated.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if form and isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isdigit() and digits.isascii() and len(digits) <= 12:
            return int(text)
    return None


def parse_boolean(value: object, *, form: bool) -> bool | None:
    """A boolean parameter as validation reads it (forms say ``true``/``false``)."""
    if isinstance(value, bool):
        return value
    if form and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def validate_generation(
    params: Mapping[str, object],
    *,
    form: bool = False,
    unknown_model: UnknownModelPolicy = UnknownModelPolicy.PASS_THROUGH,
) -> list[Violation]:
    """Violations of a POST /images/generations body (JSON, so normally ``form=False``)."""
    checker = _Checker(params, form)
    rules = checker.model_rules(Operation.GENERATION, unknown_model)
    if rules is None:
        return checker.violations
    checker.known_params(rules.generation_params)
    checker.common(rules, Operation.GENERATION)
    return checker.violations


def validate_edit(
    params: Mapping[str, object],
    images: Sequence[FileDescriptor],
    mask: FileDescriptor | None = None,
    markup: FileDescriptor | None = None,
    *,
    form: bool = True,
    unknown_model: UnknownModelPolicy = UnknownModelPolicy.PASS_THROUGH,
) -> list[Violation]:
    """Violations of a POST /images/edits request.

    ``form=True``: multipart; ``params`` holds the non-file fields, ``images`` the
    ``image``/``image[]`` parts in order. ``form=False``: the JSON body
    (EditImageBodyJsonParam) with its ``images``/``mask`` references in ``params``;
    ``images``/``mask`` then describe the decoded references, if the caller has them.
    """
    checker = _Checker(params, form)
    rules = checker.model_rules(Operation.EDIT, unknown_model)
    if rules is None:
        return checker.violations
    if form:
        checker.known_params(rules.edit_params - {"image", "mask", "markup"})
    else:
        if not rules.json_edits:
            checker.add(
                "model",
                f"JSON edits support GPT image models only; use multipart for '{rules.name}'.",
                Code.INVALID_VALUE,
            )
            return checker.violations
        checker.known_params((rules.edit_params - {"image", "markup"}) | {"images"})
        checker.image_refs()
    checker.common(rules, Operation.EDIT)
    checker.gif_without_mask(rules, mask is not None or (not form and checker.given("mask")))
    checker.edit_files(rules, images, mask, markup, require_images=form)
    return checker.violations


def validate_variation(
    params: Mapping[str, object],
    image: FileDescriptor | None,
    *,
    form: bool = True,
    unknown_model: UnknownModelPolicy = UnknownModelPolicy.PASS_THROUGH,
) -> list[Violation]:
    """Violations of a POST /images/variations request (multipart)."""
    checker = _Checker(params, form)
    rules = checker.model_rules(Operation.VARIATION, unknown_model)
    if rules is None:
        return checker.violations
    if Operation.VARIATION not in rules.operations:
        checker.add(
            "model",
            f"Invalid value: '{rules.name}'. Variations are only supported for 'dall-e-2'.",
            Code.INVALID_VALUE,
        )
        return checker.violations
    checker.known_params(rules.variation_params - {"image"})
    checker.common(rules, Operation.VARIATION)
    checker.edit_files(rules, [image] if image else [], None, None, require_images=True)
    return checker.violations


def _quoted(values: frozenset[str]) -> str:
    return ", ".join(f"'{value}'" for value in sorted(values))


class _Checker:
    """Accumulates violations over one parameter dict."""

    def __init__(self, params: Mapping[str, object], form: bool) -> None:
        self.params = params
        self.form = form
        self.violations: list[Violation] = []
        # Parameters already reported as unknown are not judged again on their value.
        self.unknown: set[str] = set()

    def add(self, param: str, message: str, code: Code) -> None:
        self.violations.append(Violation(param, message, code))

    def value(self, name: str) -> object:
        return None if name in self.unknown else self.params.get(name)

    def given(self, name: str) -> bool:
        return self.value(name) is not None

    # -- typed getters: None means absent or wrongly typed (the latter is recorded) --

    def string(self, name: str) -> str | None:
        value = self.value(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(name, f"Invalid type for '{name}': expected a string.", Code.INVALID_TYPE)
            return None
        return value

    def integer(self, name: str) -> int | None:
        value = self.value(name)
        if value is None:
            return None
        parsed = parse_integer(value, form=self.form)
        if parsed is None:
            self.add(name, f"Invalid type for '{name}': expected an integer.", Code.INVALID_TYPE)
        return parsed

    def boolean(self, name: str) -> bool | None:
        value = self.value(name)
        if value is None:
            return None
        parsed = parse_boolean(value, form=self.form)
        if parsed is None:
            self.add(name, f"Invalid type for '{name}': expected a boolean.", Code.INVALID_TYPE)
        return parsed

    def choice(self, name: str, allowed: frozenset[str]) -> str | None:
        value = self.string(name)
        if value is not None and value not in allowed:
            self.add(
                name,
                f"Invalid value: '{value[:100]}'. Supported values are: {_quoted(allowed)}.",
                Code.INVALID_VALUE,
            )
            return None
        return value

    def int_range(self, name: str, low: int, high: int | None) -> int | None:
        value = self.integer(name)
        if value is None:
            return None
        if value < low:
            self.add(
                name,
                f"Invalid '{name}': integer below minimum value. "
                f"Expected a value >= {low}, but got {value} instead.",
                Code.INTEGER_BELOW_MIN_VALUE,
            )
            return None
        if high is not None and value > high:
            self.add(
                name,
                f"Invalid '{name}': integer above maximum value. "
                f"Expected a value <= {high}, but got {value} instead.",
                Code.INTEGER_ABOVE_MAX_VALUE,
            )
            return None
        return value

    # -- rules --

    def model_rules(self, operation: Operation, policy: UnknownModelPolicy) -> ModelRules | None:
        model = resolve_model(operation, self.params)
        if model is None:
            self.add("model", "Invalid type for 'model': expected a string.", Code.INVALID_TYPE)
            return None
        rules = rules_for(model)
        if rules is None:
            if policy is UnknownModelPolicy.PASS_THROUGH:
                return None
            return GPT_LIKE_DEFAULT
        if operation not in rules.operations and operation is not Operation.VARIATION:
            self.add(
                "model",
                f"Invalid value: '{model}'. This model does not support image {operation.value}s.",
                Code.INVALID_VALUE,
            )
            return None
        return rules

    def known_params(self, accepted: frozenset[str]) -> None:
        for name in self.params:
            if name not in accepted:
                self.unknown.add(name)
                self.add(name, f"Unknown parameter: '{name[:100]}'.", Code.UNKNOWN_PARAMETER)

    def common(self, rules: ModelRules, operation: Operation) -> None:
        self.prompt(rules, required=operation is not Operation.VARIATION)
        n = self.int_range("n", 1, rules.n_max)
        size = self.string("size")
        if size is not None and not size_allowed(rules, size):
            hint = " or WIDTHxHEIGHT (multiples of 16, ratio 1:3 to 3:1, at most 3840x2160)"
            self.add(
                "size",
                f"Invalid value: '{size[:100]}'. Supported values are: {_quoted(rules.sizes)}"
                + (hint if rules.flexible_size else "")
                + ".",
                Code.INVALID_VALUE,
            )
        self.choice("quality", rules.qualities)
        self.choice("response_format", frozenset({"url", "b64_json"}))
        self.choice("style", rules.styles)
        background = self.choice("background", frozenset({"transparent", "opaque", "auto"}))
        self.choice("moderation", frozenset({"low", "auto"}))
        output_format = self.choice("output_format", rules.output_formats)
        compression = self.int_range("output_compression", 0, 100)
        partial_images = self.int_range("partial_images", 0, 3)
        stream = self.boolean("stream")
        self.choice("input_fidelity", rules.input_fidelities)
        self.choice("complexity", frozenset({"low", "medium", "high"}))
        self.int_range("frame_count", 2, 16)
        self.int_range("frame_duration_ms", 0, None)
        self.string("user")
        self.string("safety_identifier")
        self.svg()
        self.format_rules(output_format, background, compression, n, stream, partial_images)

    def prompt(self, rules: ModelRules, *, required: bool) -> None:
        if not required:
            return
        if not self.given("prompt"):
            self.add(
                "prompt", "Missing required parameter: 'prompt'.", Code.MISSING_REQUIRED_PARAMETER
            )
            return
        prompt = self.string("prompt")
        if prompt is None:
            return
        if not prompt:
            self.add(
                "prompt",
                "Invalid 'prompt': empty string. Expected a string with minimum length 1.",
                Code.EMPTY_STRING,
            )
        elif len(prompt) > rules.prompt_max_chars:
            self.add(
                "prompt",
                f"Invalid 'prompt': string too long. Expected a string with maximum length "
                f"{rules.prompt_max_chars}, but got a string with length {len(prompt)} instead.",
                Code.STRING_ABOVE_MAX_LENGTH,
            )

    def svg(self) -> None:
        svg = self.value("svg")
        if svg is None:
            return
        if not isinstance(svg, Mapping):
            self.add("svg", "Invalid type for 'svg': expected an object.", Code.INVALID_TYPE)
            return
        for key in svg:
            if key not in ("model", "reasoning"):
                self.add(f"svg.{key}", f"Unknown parameter: 'svg.{key}'.", Code.UNKNOWN_PARAMETER)
        model = svg.get("model")
        if model is not None and not isinstance(model, str):
            self.add(
                "svg.model", "Invalid type for 'svg.model': expected a string.", Code.INVALID_TYPE
            )
        reasoning = svg.get("reasoning")
        if reasoning is None:
            return
        if not isinstance(reasoning, Mapping):
            self.add(
                "svg.reasoning",
                "Invalid type for 'svg.reasoning': expected an object.",
                Code.INVALID_TYPE,
            )
            return
        effort = reasoning.get("effort")
        if effort is not None and (not isinstance(effort, str) or effort not in _SVG_EFFORTS):
            self.add(
                "svg.reasoning.effort",
                "Invalid value for 'svg.reasoning.effort'. "
                f"Supported values are: {_quoted(_SVG_EFFORTS)}.",
                Code.INVALID_VALUE,
            )

    def format_rules(
        self,
        output_format: str | None,
        background: str | None,
        compression: int | None,
        n: int | None,
        stream: bool | None,
        partial_images: int | None,
    ) -> None:
        fmt = output_format or "png"
        if background == "transparent" and fmt not in ("png", "webp"):
            self.add(
                "background",
                f"Transparent background is not supported for output_format '{fmt}'; "
                "use 'png' or 'webp'.",
                Code.INVALID_VALUE,
            )
        if compression is not None and compression != 100 and fmt not in ("jpeg", "webp"):
            self.add(
                "output_compression",
                f"output_compression below 100 is not supported for output_format '{fmt}'.",
                Code.INVALID_VALUE,
            )
        for name in ("frame_count", "frame_duration_ms"):
            if self.given(name) and fmt != "gif":
                self.add(
                    name,
                    f"'{name}' is only supported with output_format 'gif'.",
                    Code.INVALID_VALUE,
                )
        if self.given("svg") and fmt != "svg":
            self.add("svg", "'svg' requires output_format 'svg'.", Code.INVALID_VALUE)
        if fmt in ("gif", "svg"):
            if stream:
                self.add(
                    "stream",
                    f"Streaming is not supported with output_format '{fmt}'.",
                    Code.INVALID_VALUE,
                )
            if partial_images:
                self.add(
                    "partial_images",
                    f"Partial images are not supported with output_format '{fmt}'.",
                    Code.INVALID_VALUE,
                )
        if fmt == "svg" and n is not None and n != 1:
            self.add("n", "SVG output requires n=1.", Code.INVALID_VALUE)

    def gif_without_mask(self, rules: ModelRules, has_mask: bool) -> None:
        # The SDK: "GIF output does not support streaming, partial images, masks, or
        # custom output compression" (the first two and the last are format_rules').
        gif = self.value("output_format") == "gif" and "gif" in rules.output_formats
        if gif and has_mask:
            self.add(
                "mask",
                "'mask' is not supported with output_format 'gif'; omit the mask or choose "
                "another output format.",
                Code.INVALID_VALUE,
            )

    def image_refs(self) -> None:
        """Structure of the JSON edit body's ``images`` and ``mask`` (ImageRefParam)."""
        images = self.params.get("images")
        if images is None:
            self.add(
                "images", "Missing required parameter: 'images'.", Code.MISSING_REQUIRED_PARAMETER
            )
        elif not isinstance(images, list):
            self.add("images", "Invalid type for 'images': expected an array.", Code.INVALID_TYPE)
        elif not images:
            self.add("images", "Invalid 'images': expected at least 1 image.", Code.INVALID_VALUE)
        elif len(images) > 16:
            self.add(
                "images",
                f"Invalid 'images': array too long. Expected at most 16 items, got {len(images)}.",
                Code.ARRAY_ABOVE_MAX_LENGTH,
            )
        else:
            for index, ref in enumerate(images):
                self.image_ref(f"images[{index}]", ref)
        mask = self.params.get("mask")
        if mask is not None:
            self.image_ref("mask", mask)

    def image_ref(self, param: str, ref: object) -> None:
        if not isinstance(ref, Mapping):
            self.add(param, f"Invalid type for '{param}': expected an object.", Code.INVALID_TYPE)
            return
        keys = set(ref)
        extra = keys - {"image_url", "file_id"}
        if extra:
            name = sorted(str(key) for key in extra)[0]
            self.add(
                f"{param}.{name}", f"Unknown parameter: '{param}.{name}'.", Code.UNKNOWN_PARAMETER
            )
        chosen = keys & {"image_url", "file_id"}
        if len(chosen) != 1:
            self.add(
                param,
                f"Invalid '{param}': provide exactly one of 'image_url' or 'file_id'.",
                Code.INVALID_VALUE,
            )
            return
        (key,) = chosen
        value = ref[key]
        if not isinstance(value, str) or not value:
            self.add(
                f"{param}.{key}",
                f"Invalid type for '{param}.{key}': expected a string.",
                Code.INVALID_TYPE,
            )
        elif key == "image_url" and len(value) > 20_971_520:
            self.add(
                f"{param}.{key}",
                f"Invalid '{param}.{key}': string too long (at most 20971520 characters).",
                Code.STRING_ABOVE_MAX_LENGTH,
            )

    def edit_files(
        self,
        rules: ModelRules,
        images: Sequence[FileDescriptor],
        mask: FileDescriptor | None,
        markup: FileDescriptor | None,
        *,
        require_images: bool,
    ) -> None:
        if not images:
            if require_images:
                self.add(
                    "image", "Missing required parameter: 'image'.", Code.MISSING_REQUIRED_PARAMETER
                )
            return
        if len(images) > rules.max_input_images:
            self.add(
                "image",
                f"Invalid 'image': too many images. Expected at most {rules.max_input_images}, "
                f"got {len(images)}.",
                Code.ARRAY_ABOVE_MAX_LENGTH,
            )
            return
        for image in images:
            self.input_file(
                image, rules.input_image_formats, rules.image_max_bytes, rules.square_png_input
            )
        if mask is not None and markup is not None:
            self.add("markup", "'markup' cannot be combined with 'mask'.", Code.INVALID_VALUE)
            return
        first = images[0].info
        if mask is not None:
            self.overlay(mask, first, rules.mask_max_bytes)
        if markup is not None:
            if "markup" not in rules.edit_params:
                self.add("markup", "Unknown parameter: 'markup'.", Code.UNKNOWN_PARAMETER)
            else:
                self.overlay(markup, first, rules.image_max_bytes)

    def input_file(
        self, file: FileDescriptor, formats: frozenset[str], max_bytes: int, square: bool
    ) -> bool:
        param = file.param
        info = file.info
        allowed_names = " or ".join(sorted(formats))
        if info is None or info.format not in formats:
            self.add(
                param,
                f"Invalid image file for '{param}': the content must be {allowed_names}.",
                Code.INVALID_IMAGE_FORMAT,
            )
            return False
        if file.content_type is not None and file.content_type not in _ALLOWED_MIMETYPES.get(
            info.format, frozenset()
        ):
            self.add(
                param,
                f"Invalid file '{param}': unsupported mimetype ('{file.content_type[:100]}'). "
                f"Supported file formats are {allowed_names}.",
                Code.UNSUPPORTED_FILE_MIMETYPE,
            )
            return False
        if file.size >= max_bytes:
            self.add(
                param,
                f"Invalid '{param}': the file must be less than {max_bytes // (1024 * 1024)} MB.",
                Code.IMAGE_TOO_LARGE,
            )
            return False
        if info.width is None or info.height is None:
            self.add(
                param,
                f"Invalid image file for '{param}': unreadable header.",
                Code.INVALID_IMAGE_FORMAT,
            )
            return False
        if square and info.width != info.height:
            self.add(
                param,
                f"Invalid '{param}': the image must be square, got {info.width}x{info.height}.",
                Code.INVALID_IMAGE_DIMENSIONS,
            )
            return False
        return True

    def overlay(self, file: FileDescriptor, first: ImageInfo | None, max_bytes: int) -> None:
        """A mask or markup: a PNG with alpha and the first image's dimensions."""
        if not self.input_file(file, frozenset({"png"}), max_bytes, square=False):
            return
        info = file.info
        assert info is not None  # input_file accepted it
        if not info.has_alpha:
            self.add(
                file.param,
                f"Invalid '{file.param}': the PNG must have an alpha channel.",
                Code.INVALID_IMAGE_FORMAT,
            )
        elif (
            first is not None
            and first.width is not None
            and (info.width, info.height)
            != (
                first.width,
                first.height,
            )
        ):
            self.add(
                file.param,
                f"Invalid '{file.param}': dimensions {info.width}x{info.height} differ from "
                f"the image's {first.width}x{first.height}.",
                Code.INVALID_IMAGE_DIMENSIONS,
            )
