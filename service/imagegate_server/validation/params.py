"""Rules on the non-file parameters every operation shares: prompt, n, size, enums,
numeric ranges, ``svg``, and the rules that tie parameters to the output format."""

from __future__ import annotations

from collections.abc import Mapping

from imagegate_server.models import ModelRules, Operation, size_allowed
from imagegate_server.validation.checker import Checker, quoted
from imagegate_server.validation.results import Code

_SVG_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
_SIZE_HINT = " or WIDTHxHEIGHT (multiples of 16, ratio 1:3 to 3:1, at most 3840x2160)"


def check_common(checker: Checker, rules: ModelRules, operation: Operation) -> None:
    _prompt(checker, rules, required=operation is not Operation.VARIATION)
    n = checker.int_range("n", 1, rules.n_max)
    size = checker.string("size")
    if size is not None and not size_allowed(rules, size):
        checker.add(
            "size",
            f"Invalid value: '{size[:100]}'. Supported values are: {quoted(rules.sizes)}"
            + (_SIZE_HINT if rules.flexible_size else "")
            + ".",
            Code.INVALID_VALUE,
        )
    checker.choice("quality", rules.qualities)
    checker.choice("response_format", frozenset({"url", "b64_json"}))
    checker.choice("style", rules.styles)
    background = checker.choice("background", frozenset({"transparent", "opaque", "auto"}))
    checker.choice("moderation", frozenset({"low", "auto"}))
    output_format = checker.choice("output_format", rules.output_formats)
    compression = checker.int_range("output_compression", 0, 100)
    partial_images = checker.int_range("partial_images", 0, 3)
    stream = checker.boolean("stream")
    checker.choice("input_fidelity", rules.input_fidelities)
    checker.choice("complexity", frozenset({"low", "medium", "high"}))
    checker.int_range("frame_count", 2, 16)
    checker.int_range("frame_duration_ms", 0, None)
    checker.string("user")
    checker.string("safety_identifier")
    _svg(checker)
    _format_rules(checker, output_format, background, compression, n, stream, partial_images)


def check_gif_without_mask(checker: Checker, rules: ModelRules, has_mask: bool) -> None:
    # The SDK: "GIF output does not support streaming, partial images, masks, or
    # custom output compression" (the first two and the last are _format_rules').
    gif = checker.value("output_format") == "gif" and "gif" in rules.output_formats
    if gif and has_mask:
        checker.add(
            "mask",
            "'mask' is not supported with output_format 'gif'; omit the mask or choose "
            "another output format.",
            Code.INVALID_VALUE,
        )


def _prompt(checker: Checker, rules: ModelRules, *, required: bool) -> None:
    if not required:
        return
    if not checker.given("prompt"):
        checker.add(
            "prompt", "Missing required parameter: 'prompt'.", Code.MISSING_REQUIRED_PARAMETER
        )
        return
    prompt = checker.string("prompt")
    if prompt is None:
        return
    if not prompt:
        checker.add(
            "prompt",
            "Invalid 'prompt': empty string. Expected a string with minimum length 1.",
            Code.EMPTY_STRING,
        )
    elif len(prompt) > rules.prompt_max_chars:
        checker.add(
            "prompt",
            f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{rules.prompt_max_chars}, but got a string with length {len(prompt)} instead.",
            Code.STRING_ABOVE_MAX_LENGTH,
        )


def _svg(checker: Checker) -> None:
    svg = checker.value("svg")
    if svg is None:
        return
    if not isinstance(svg, Mapping):
        checker.add("svg", "Invalid type for 'svg': expected an object.", Code.INVALID_TYPE)
        return
    for key in svg:
        if key not in ("model", "reasoning"):
            checker.add(f"svg.{key}", f"Unknown parameter: 'svg.{key}'.", Code.UNKNOWN_PARAMETER)
    model = svg.get("model")
    if model is not None and not isinstance(model, str):
        checker.add(
            "svg.model", "Invalid type for 'svg.model': expected a string.", Code.INVALID_TYPE
        )
    reasoning = svg.get("reasoning")
    if reasoning is None:
        return
    if not isinstance(reasoning, Mapping):
        checker.add(
            "svg.reasoning",
            "Invalid type for 'svg.reasoning': expected an object.",
            Code.INVALID_TYPE,
        )
        return
    effort = reasoning.get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in _SVG_EFFORTS):
        checker.add(
            "svg.reasoning.effort",
            "Invalid value for 'svg.reasoning.effort'. "
            f"Supported values are: {quoted(_SVG_EFFORTS)}.",
            Code.INVALID_VALUE,
        )


def _format_rules(
    checker: Checker,
    output_format: str | None,
    background: str | None,
    compression: int | None,
    n: int | None,
    stream: bool | None,
    partial_images: int | None,
) -> None:
    fmt = output_format or "png"
    if background == "transparent" and fmt not in ("png", "webp"):
        checker.add(
            "background",
            f"Transparent background is not supported for output_format '{fmt}'; "
            "use 'png' or 'webp'.",
            Code.INVALID_VALUE,
        )
    if compression is not None and compression != 100 and fmt not in ("jpeg", "webp"):
        checker.add(
            "output_compression",
            f"output_compression below 100 is not supported for output_format '{fmt}'.",
            Code.INVALID_VALUE,
        )
    for name in ("frame_count", "frame_duration_ms"):
        if checker.given(name) and fmt != "gif":
            checker.add(
                name,
                f"'{name}' is only supported with output_format 'gif'.",
                Code.INVALID_VALUE,
            )
    if checker.given("svg") and fmt != "svg":
        checker.add("svg", "'svg' requires output_format 'svg'.", Code.INVALID_VALUE)
    if fmt in ("gif", "svg"):
        if stream:
            checker.add(
                "stream",
                f"Streaming is not supported with output_format '{fmt}'.",
                Code.INVALID_VALUE,
            )
        if partial_images:
            checker.add(
                "partial_images",
                f"Partial images are not supported with output_format '{fmt}'.",
                Code.INVALID_VALUE,
            )
    if fmt == "svg" and n is not None and n != 1:
        checker.add("n", "SVG output requires n=1.", Code.INVALID_VALUE)
