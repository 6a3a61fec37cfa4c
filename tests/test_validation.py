"""The shared per-model rules, through the pure validation functions."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate_server.imageformat import ImageInfo
from imagegate_server.models import (
    MB,
    MODEL_RULES,
    Operation,
    parse_size,
    resolve_model,
    size_allowed,
)
from imagegate_server.validation import (
    Code,
    FileDescriptor,
    UnknownModelPolicy,
    Violation,
    validate_edit,
    validate_generation,
    validate_variation,
)

# The emulator's two edit bodies: multipart (string values, files as parts) and JSON
# (typed values, images as references); variations are multipart only.
multipart_edit = functools.partial(validate_edit, form_values=True, image_references=False)
json_edit = functools.partial(validate_edit, form_values=False, image_references=True)
multipart_variation = functools.partial(validate_variation, form_values=True)


def png(
    param: str = "image",
    w: int = 512,
    h: int = 512,
    *,
    alpha: bool = True,
    size: int = 1000,
    content_type: str | None = "image/png",
) -> FileDescriptor:
    return FileDescriptor(
        param, size, ImageInfo("png", w, h, alpha, 6 if alpha else 2), content_type
    )


def jpeg(param: str = "image", w: int = 512, h: int = 512, size: int = 1000) -> FileDescriptor:
    return FileDescriptor(param, size, ImageInfo("jpeg", w, h, False), "image/jpeg")


def only(violations: list[Violation]) -> tuple[str, Code]:
    assert len(violations) == 1, violations
    return violations[0].param, violations[0].code


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "otter"},
        {
            "prompt": "otter",
            "model": "dall-e-2",
            "n": 10,
            "size": "256x256",
            "response_format": "b64_json",
        },
        {
            "prompt": "otter",
            "model": "dall-e-3",
            "size": "1792x1024",
            "quality": "hd",
            "style": "natural",
        },
        {
            "prompt": "otter",
            "model": "gpt-image-1.5",
            "n": 3,
            "quality": "high",
            "background": "transparent",
            "output_format": "webp",
            "output_compression": 40,
            "moderation": "low",
            "stream": True,
            "partial_images": 3,
            "size": "1536x1024",
            "user": "u",
            "safety_identifier": "s",
        },
        {"prompt": "otter", "model": "gpt-image-2", "size": "1536x864"},
        {
            "prompt": "otter",
            "model": "gpt-image-2.5-flare",
            "quality": "max",
            "output_format": "gif",
            "frame_count": 16,
            "frame_duration_ms": 100,
            "complexity": "low",
        },
        {
            "prompt": "otter",
            "model": "gpt-image-2.5-sunburst",
            "output_format": "svg",
            "svg": {"model": "x", "reasoning": {"effort": "low"}},
        },
        {"prompt": "otter", "model": None, "n": None, "size": None},
    ],
)
def test_valid_generations(params: Mapping[str, object]) -> None:
    assert validate_generation(params) == []


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({}, "prompt", Code.MISSING_REQUIRED_PARAMETER),
        ({"prompt": ""}, "prompt", Code.EMPTY_STRING),
        ({"prompt": 3}, "prompt", Code.INVALID_TYPE),
        ({"prompt": "x" * 1001, "model": "dall-e-2"}, "prompt", Code.STRING_ABOVE_MAX_LENGTH),
        ({"prompt": "x" * 4001, "model": "dall-e-3"}, "prompt", Code.STRING_ABOVE_MAX_LENGTH),
        ({"prompt": "x" * 32001, "model": "gpt-image-1"}, "prompt", Code.STRING_ABOVE_MAX_LENGTH),
        ({"prompt": "p", "n": 0}, "n", Code.INTEGER_BELOW_MIN_VALUE),
        ({"prompt": "p", "n": 11}, "n", Code.INTEGER_ABOVE_MAX_VALUE),
        ({"prompt": "p", "n": "2"}, "n", Code.INVALID_TYPE),
        ({"prompt": "p", "n": True}, "n", Code.INVALID_TYPE),
        ({"prompt": "p", "model": "dall-e-3", "n": 2}, "n", Code.INTEGER_ABOVE_MAX_VALUE),
        ({"prompt": "p", "model": "dall-e-2", "size": "1792x1024"}, "size", Code.INVALID_VALUE),
        ({"prompt": "p", "model": "dall-e-3", "size": "512x512"}, "size", Code.INVALID_VALUE),
        ({"prompt": "p", "model": "gpt-image-1", "size": "1536x864"}, "size", Code.INVALID_VALUE),
        ({"prompt": "p", "model": "gpt-image-2", "size": "1000x1000"}, "size", Code.INVALID_VALUE),
        ({"prompt": "p", "model": "gpt-image-2", "size": "3200x1024"}, "size", Code.INVALID_VALUE),
        ({"prompt": "p", "model": "gpt-image-2", "size": "3840x2176"}, "size", Code.INVALID_VALUE),
        (
            {"prompt": "p", "model": "gpt-image-1", "response_format": "url"},
            "response_format",
            Code.UNKNOWN_PARAMETER,
        ),
        ({"prompt": "p", "model": "dall-e-2", "style": "vivid"}, "style", Code.UNKNOWN_PARAMETER),
        ({"prompt": "p", "model": "dall-e-3", "stream": True}, "stream", Code.UNKNOWN_PARAMETER),
        (
            {
                "prompt": "p",
                "model": "gpt-image-1",
                "output_format": "webp",
                "output_compression": 101,
            },
            "output_compression",
            Code.INTEGER_ABOVE_MAX_VALUE,
        ),
        (
            {"prompt": "p", "model": "gpt-image-1", "output_compression": 50},
            "output_compression",
            Code.INVALID_VALUE,
        ),
        (
            {
                "prompt": "p",
                "model": "gpt-image-1",
                "background": "transparent",
                "output_format": "jpeg",
            },
            "background",
            Code.INVALID_VALUE,
        ),
        (
            {"prompt": "p", "model": "gpt-image-1", "partial_images": 4},
            "partial_images",
            Code.INTEGER_ABOVE_MAX_VALUE,
        ),
        ({"prompt": "p", "model": "gpt-image-1", "quality": "hd"}, "quality", Code.INVALID_VALUE),
        ({"prompt": "p", "model": "gpt-image-1", "quality": "max"}, "quality", Code.INVALID_VALUE),
        (
            {"prompt": "p", "model": "gpt-image-1", "output_format": "gif"},
            "output_format",
            Code.INVALID_VALUE,
        ),
        (
            {"prompt": "p", "model": "gpt-image-2.5-flare", "frame_count": 3},
            "frame_count",
            Code.INVALID_VALUE,
        ),
        (
            {"prompt": "p", "model": "gpt-image-2.5-flare", "output_format": "svg", "n": 2},
            "n",
            Code.INVALID_VALUE,
        ),
        ({"prompt": "p", "model": 7}, "model", Code.INVALID_TYPE),
        ({"prompt": "p", "bogus": 1}, "bogus", Code.UNKNOWN_PARAMETER),
    ],
)
def test_generation_violations(params: Mapping[str, object], param: str, code: Code) -> None:
    assert only(validate_generation(params)) == (param, code)


def test_unknown_models_pass_through_or_are_judged_gpt_like() -> None:
    params = {"prompt": "p", "model": "gpt-image-9", "response_format": "url", "size": "1x1"}
    assert validate_generation(params) == []
    judged = validate_generation(params, unknown_model=UnknownModelPolicy.GPT_LIKE)
    assert {v.param for v in judged} == {"response_format", "size"}


def test_default_model_follows_the_spec() -> None:
    assert resolve_model(Operation.GENERATION, {"prompt": "p"}) == "dall-e-2"
    assert (
        resolve_model(Operation.GENERATION, {"prompt": "p", "output_format": "png"}) != "dall-e-2"
    )
    assert resolve_model(Operation.EDIT, {}) == "gpt-image-1.5"
    assert resolve_model(Operation.VARIATION, {}) == "dall-e-2"


@pytest.mark.parametrize(
    "extra",
    [
        {"complexity": "low"},
        {"output_format": "gif", "frame_count": 4},
        {"output_format": "gif", "frame_duration_ms": 100},
        {"output_format": "svg", "svg": {"model": "m"}},
    ],
)
def test_newer_gpt_only_parameters_imply_a_model_that_accepts_them(
    extra: dict[str, object],
) -> None:
    params = {"prompt": "p", **extra}
    model = resolve_model(Operation.GENERATION, params)
    assert model is not None and model != "dall-e-2"
    assert MODEL_RULES[model].gpt_image
    assert validate_generation(params) == []


def test_safety_identifier_names_the_end_user_for_every_model() -> None:
    # openai 3.57: it supersedes `user` on generations and edits, whatever the model,
    # so it neither fails on DALL-E models nor implies a GPT model by default.
    for model in ("dall-e-2", "dall-e-3", "gpt-image-1.5"):
        assert validate_generation({"prompt": "p", "model": model, "safety_identifier": "u"}) == []
    assert resolve_model(Operation.GENERATION, {"prompt": "p", "safety_identifier": "u"}) == (
        "dall-e-2"
    )
    edit = {"prompt": "p", "model": "dall-e-2", "safety_identifier": "u"}
    assert multipart_edit(edit, [png()]) == []
    assert only(
        multipart_variation({"model": "dall-e-2", "safety_identifier": "u"}, png(alpha=False))
    ) == ("safety_identifier", Code.UNKNOWN_PARAMETER)


def test_form_values_are_strings() -> None:
    params = {
        "prompt": "p",
        "model": "gpt-image-1",
        "n": "2",
        "stream": "true",
        "partial_images": "1",
    }
    assert multipart_edit(params, [png()]) == []
    bad = {"prompt": "p", "model": "gpt-image-1", "n": "two", "stream": "yes"}
    assert {v.param for v in multipart_edit(bad, [png()])} == {"n", "stream"}


def test_valid_edits() -> None:
    assert (
        multipart_edit(
            {"prompt": "p", "model": "dall-e-2", "size": "512x512"}, [png()], png("mask")
        )
        == []
    )
    many = [jpeg(f"image[{i}]") for i in range(16)]
    assert multipart_edit({"prompt": "p", "model": "gpt-image-1.5"}, many, png("mask")) == []
    assert (
        multipart_edit(
            {"prompt": "p", "model": "gpt-image-2.5-flare"}, [png()], markup=png("markup")
        )
        == []
    )


def test_dall_e_2_edits_take_standard_quality() -> None:
    # Spec: CreateImageEditRequest.quality lists `standard`, the DALL-E value.
    params = {"prompt": "p", "model": "dall-e-2", "quality": "standard"}
    assert multipart_edit(params, [png()]) == []
    assert multipart_edit({**params, "quality": "auto"}, [png()]) == []
    assert only(multipart_edit({**params, "quality": "hd"}, [png()])) == (
        "quality",
        Code.INVALID_VALUE,
    )


def test_gif_output_takes_no_mask() -> None:
    params = {"prompt": "p", "model": "gpt-image-2.5-flare", "output_format": "gif"}
    assert multipart_edit(params, [png()]) == []
    assert only(multipart_edit(params, [png()], png("mask"))) == ("mask", Code.INVALID_VALUE)
    json_params = {**params, "images": [{"file_id": "f"}], "mask": {"file_id": "m"}}
    assert only(json_edit(json_params, [])) == ("mask", Code.INVALID_VALUE)
    # Other formats keep their masks.
    assert multipart_edit({**params, "output_format": "webp"}, [png()], png("mask")) == []


@pytest.mark.parametrize(
    ("model", "images", "mask", "markup", "param", "code"),
    [
        ("gpt-image-1", [], None, None, "image", Code.MISSING_REQUIRED_PARAMETER),
        (
            "gpt-image-1",
            [jpeg(f"image[{i}]") for i in range(17)],
            None,
            None,
            "image",
            Code.ARRAY_ABOVE_MAX_LENGTH,
        ),
        ("dall-e-2", [png(), png("image[1]")], None, None, "image", Code.ARRAY_ABOVE_MAX_LENGTH),
        ("dall-e-2", [png(w=512, h=256)], None, None, "image", Code.INVALID_IMAGE_DIMENSIONS),
        ("dall-e-2", [jpeg()], None, None, "image", Code.INVALID_IMAGE_FORMAT),
        ("dall-e-2", [png(size=4 * MB)], None, None, "image", Code.IMAGE_TOO_LARGE),
        ("gpt-image-1", [png(size=50 * MB)], None, None, "image", Code.IMAGE_TOO_LARGE),
        ("gpt-image-1", [png(size=50 * MB - 1)], None, None, None, None),
        (
            "gpt-image-1",
            [FileDescriptor("image", 10, None, "image/png")],
            None,
            None,
            "image",
            Code.INVALID_IMAGE_FORMAT,
        ),
        (
            "gpt-image-1",
            [FileDescriptor("image", 10, ImageInfo("gif", 5, 5, None), "image/gif")],
            None,
            None,
            "image",
            Code.INVALID_IMAGE_FORMAT,
        ),
        (
            "gpt-image-1",
            [png(content_type="application/octet-stream")],
            None,
            None,
            "image",
            Code.UNSUPPORTED_FILE_MIMETYPE,
        ),
        (
            "gpt-image-1",
            [png()],
            png("mask", 256, 256),
            None,
            "mask",
            Code.INVALID_IMAGE_DIMENSIONS,
        ),
        ("gpt-image-1", [png()], png("mask", alpha=False), None, "mask", Code.INVALID_IMAGE_FORMAT),
        ("gpt-image-1", [png()], jpeg("mask"), None, "mask", Code.INVALID_IMAGE_FORMAT),
        ("gpt-image-1", [png()], png("mask", size=4 * MB), None, "mask", Code.IMAGE_TOO_LARGE),
        ("gpt-image-2.5-flare", [png()], png("mask"), png("markup"), "markup", Code.INVALID_VALUE),
        ("gpt-image-1", [png()], None, png("markup"), "markup", Code.UNKNOWN_PARAMETER),
    ],
)
def test_edit_file_violations(
    model: str,
    images: list[FileDescriptor],
    mask: FileDescriptor | None,
    markup: FileDescriptor | None,
    param: str | None,
    code: Code | None,
) -> None:
    violations = multipart_edit({"prompt": "p", "model": model}, images, mask, markup)
    if param is None:
        assert violations == []
    else:
        assert only(violations) == (param, code)


def test_edit_model_rules() -> None:
    assert only(multipart_edit({"prompt": "p", "model": "dall-e-3"}, [png()])) == (
        "model",
        Code.INVALID_VALUE,
    )
    assert only(multipart_edit({"prompt": "x" * 1001, "model": "dall-e-2"}, [png()]))[1] is (
        Code.STRING_ABOVE_MAX_LENGTH
    )
    assert (
        only(
            multipart_edit(
                {"prompt": "p", "model": "gpt-image-2", "input_fidelity": "high"}, [png()]
            )
        )[0]
        == "input_fidelity"
    )
    assert only(
        multipart_edit(
            {"prompt": "p", "model": "gpt-image-1-mini", "input_fidelity": "high"}, [png()]
        )
    ) == ("input_fidelity", Code.INVALID_VALUE)


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"prompt": "p", "images": [{"image_url": "data:image/png;base64,AA=="}]}, None, None),
        ({"prompt": "p", "images": [{"file_id": "file-1"}], "mask": {"file_id": "f"}}, None, None),
        ({"prompt": "p"}, "images", Code.MISSING_REQUIRED_PARAMETER),
        ({"prompt": "p", "images": []}, "images", Code.INVALID_VALUE),
        ({"prompt": "p", "images": "x"}, "images", Code.INVALID_TYPE),
        ({"prompt": "p", "images": [{"file_id": "f"}] * 17}, "images", Code.ARRAY_ABOVE_MAX_LENGTH),
        (
            {"prompt": "p", "images": [{"file_id": "f", "image_url": "u"}]},
            "images[0]",
            Code.INVALID_VALUE,
        ),
        ({"prompt": "p", "images": [{"url": "u"}]}, "images[0].url", Code.UNKNOWN_PARAMETER),
        ({"prompt": "p", "images": [{"image_url": 5}]}, "images[0].image_url", Code.INVALID_TYPE),
        (
            {"prompt": "p", "model": "dall-e-2", "images": [{"file_id": "f"}]},
            "model",
            Code.INVALID_VALUE,
        ),
        (
            {"prompt": "p", "images": [{"file_id": "f"}], "image": "x"},
            "image",
            Code.UNKNOWN_PARAMETER,
        ),
    ],
)
def test_json_edit_bodies(
    params: Mapping[str, object], param: str | None, code: Code | None
) -> None:
    violations = json_edit(params, [])
    if param is None:
        assert violations == []
    else:
        assert (violations[0].param, violations[0].code) == (param, code)


def test_variations() -> None:
    assert multipart_variation({"n": "3", "size": "256x256"}, png()) == []
    assert only(multipart_variation({"model": "gpt-image-1"}, png())) == (
        "model",
        Code.INVALID_VALUE,
    )
    assert only(multipart_variation({}, png(w=10, h=20))) == (
        "image",
        Code.INVALID_IMAGE_DIMENSIONS,
    )
    assert only(multipart_variation({}, None)) == ("image", Code.MISSING_REQUIRED_PARAMETER)
    assert only(multipart_variation({"prompt": "p"}, png())) == ("prompt", Code.UNKNOWN_PARAMETER)
    assert only(multipart_variation({"size": "1536x1024"}, png())) == ("size", Code.INVALID_VALUE)


# --- property tests: malformed input always gives violations, never an exception ---

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "prompt",
        "model",
        "n",
        "size",
        "quality",
        "response_format",
        "style",
        "background",
        "moderation",
        "output_format",
        "output_compression",
        "partial_images",
        "stream",
        "input_fidelity",
        "svg",
        "images",
        "mask",
        "frame_count",
        "user",
        "x",
    ]
)
_models = st.sampled_from([*MODEL_RULES, "unknown-model"]) | st.text(max_size=10)


@given(
    st.dictionaries(_keys, _json, max_size=8),
    _models,
    st.booleans(),
    st.sampled_from(UnknownModelPolicy),
)
def test_arbitrary_params_never_raise(
    params: dict[str, object], model: str, form: bool, policy: UnknownModelPolicy
) -> None:
    params["model"] = model
    for violations in (
        validate_generation(params, form_values=form, unknown_model=policy),
        validate_edit(
            params, [png()], form_values=form, image_references=not form, unknown_model=policy
        ),
        validate_variation(params, png(), form_values=form, unknown_model=policy),
    ):
        assert all(isinstance(v, Violation) and v.message for v in violations)


_bad_n = (
    st.integers().filter(lambda n: not 1 <= n <= 10)
    | st.text(max_size=5)
    | st.floats(allow_nan=True).filter(lambda f: not (f == f and f.is_integer() and 1 <= f <= 10))
)


@given(st.sampled_from(sorted(MODEL_RULES)), _bad_n)
def test_bad_n_is_always_a_violation(model: str, n: object) -> None:
    params = {"prompt": "p", "model": model, "n": n}
    assert "n" in {
        v.param for v in validate_generation(params, unknown_model=UnknownModelPolicy.GPT_LIKE)
    }


@given(st.sampled_from(sorted(MODEL_RULES)), st.text(max_size=12))
def test_size_is_accepted_exactly_when_allowed(model: str, size: str) -> None:
    rules = MODEL_RULES[model]
    if Operation.GENERATION not in rules.operations:
        return
    params = {"prompt": "p", "model": model, "size": size}
    flagged = "size" in {v.param for v in validate_generation(params)}
    assert flagged is not size_allowed(rules, size)


@given(st.integers(1, 4000), st.integers(1, 4000))
def test_gpt_image_2_wxh_rule(width: int, height: int) -> None:
    ok = (
        width % 16 == 0
        and height % 16 == 0
        and max(width, height) <= 3840
        and width * height <= 3840 * 2160
        and max(width, height) <= 3 * min(width, height)
    )
    assert size_allowed(MODEL_RULES["gpt-image-2"], f"{width}x{height}") is ok


@given(
    st.builds(
        FileDescriptor,
        st.just("image"),
        st.integers(0, 60 * MB),
        st.none()
        | st.builds(
            ImageInfo,
            st.sampled_from(["png", "jpeg", "webp", "gif"]),
            st.none() | st.integers(1, 5000),
            st.none() | st.integers(1, 5000),
            st.none() | st.booleans(),
        ),
        st.none() | st.text(max_size=12),
    )
)
def test_arbitrary_files_never_raise(file: FileDescriptor) -> None:
    for model in ("dall-e-2", "gpt-image-1"):
        violations = multipart_edit({"prompt": "p", "model": model}, [file], file)
        if file.info is None or file.info.width is None:
            assert violations


@pytest.mark.parametrize(
    "size",
    [
        "²x²",
        "①⓪②④x1024",
        "\u0661\u0660\u0662\u0664x\u0661\u0660\u0662\u0664",
        "1024x1024\n",
        " 1024x1024",
    ],
)
def test_sizes_are_ascii_digits_only(size: str) -> None:
    # str.isdigit() accepts all of these; int() refuses the first two and reads the
    # Arabic-Indic digits as 1024.
    assert parse_size(size) is None
    assert only(validate_generation({"prompt": "p", "model": "gpt-image-2", "size": size})) == (
        "size",
        Code.INVALID_VALUE,
    )
