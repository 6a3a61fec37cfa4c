"""From a parsed body to a validated, fully defaulted job (or OpenAI's 400)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from imagegate_server.emulator.errors import bad_request, model_not_found
from imagegate_server.emulator.parsing import (
    FILE_FIELDS,
    Body,
    Upload,
    decode_image_ref,
    form_params,
)
from imagegate_server.emulator.pictures import decode_picture
from imagegate_server.models import (
    GPT_LIKE_DEFAULT,
    ModelRules,
    Operation,
    parse_size,
    resolve_model,
    rules_for,
    size_allowed,
)
from imagegate_server.validation import (
    UnknownModelPolicy,
    Violation,
    parse_boolean,
    parse_integer,
    validate_edit,
    validate_generation,
    validate_variation,
)

_GPT = UnknownModelPolicy.GPT_LIKE
# GIF frame delays are encoded in centiseconds in 16 bits; OpenAI caps them there too.
_MAX_FRAME_DURATION_MS = 655_350
# What ``size=auto`` picks from when the input's own size is not one the model makes.
_AUTO_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))


@dataclass
class Job:
    """Everything needed to produce the images of one request, defaults applied."""

    operation: Operation
    model: str
    rules: ModelRules
    prompt: str
    n: int
    width: int
    height: int
    quality: str
    """The quality used, as echoed back (``auto`` resolved to ``medium``)."""
    output_format: str
    transparent: bool
    compression: int
    response_format: str
    stream: bool
    partial_images: int
    style: str
    frame_count: int
    frame_duration_ms: int
    images: list[Upload] = field(default_factory=list)
    pictures: list[Image.Image] = field(default_factory=list)
    """``images`` decoded (RGBA), in the same order."""
    mask_picture: Image.Image | None = None
    markup_picture: Image.Image | None = None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def identity_prompt(self) -> str:
        """What identities hash: the prompt, or for variations the input image's hash."""
        if self.operation is Operation.VARIATION and self.images:
            return self.images[0].sha256
        return self.prompt


def _raise_first(violations: list[Violation]) -> None:
    if violations:
        first = violations[0]
        raise bad_request(first.message, first.param, first.code.value)


def _json_object(body: Body) -> dict[str, Any]:
    if body.kind == "empty":
        return {}
    if not isinstance(body.json, dict):
        raise bad_request("Invalid body: expected a JSON object.", None, "invalid_type")
    return body.json


def _check_model(
    operation: Operation, params: dict[str, Any], extra_models: frozenset[str]
) -> None:
    # Before the parameters are judged: they can only be judged by a model's rules.
    # A model that is not a string is left to validation (OpenAI's 400 invalid_type).
    model = resolve_model(operation, params)
    if model is not None and rules_for(model) is None and model not in extra_models:
        raise model_not_found(model)


def build_job(operation: Operation, body: Body, extra_models: frozenset[str] = frozenset()) -> Job:
    """Raise :class:`ApiError` 400 exactly where OpenAI would (404 for a model it does
    not serve: one neither in the model table nor in ``extra_models``)."""
    images: list[Upload] = []
    mask: Upload | None = None
    markup: Upload | None = None
    form = body.kind == "multipart"
    if form:
        params = form_params(body.form)
        for upload in body.files:
            if upload.field in ("image", "image[]"):
                images.append(upload)
            elif upload.field == "mask":
                mask = upload
            elif upload.field == "markup":
                markup = upload
            # A file under any other name is an unknown parameter, as OpenAI says.
            if upload.field not in FILE_FIELDS:
                params[upload.field] = "<file>"
    else:
        params = _json_object(body)
    _check_model(operation, params, extra_models)

    names: list[str] = []
    if operation is Operation.GENERATION:
        if form:
            raise bad_request("Generations take a JSON body.", None, "invalid_value")
        _raise_first(validate_generation(params, unknown_model=_GPT))
    elif operation is Operation.EDIT:
        if not form:
            # Check the structure first, then decode data: URLs and check the files.
            _raise_first(
                validate_edit(
                    params, [], form_values=False, image_references=True, unknown_model=_GPT
                )
            )
            refs: Any = params["images"]  # validated: a list of ImageRefParam objects
            images = [decode_image_ref(f"images[{i}]", ref) for i, ref in enumerate(refs)]
            mask_ref: Any = params.get("mask")
            mask = decode_image_ref("mask", mask_ref) if mask_ref else None
        names = [_image_param(upload, i, len(images), form) for i, upload in enumerate(images)]
        descriptors = [upload.descriptor(name) for upload, name in zip(images, names, strict=True)]
        _raise_first(
            validate_edit(
                params,
                descriptors,
                mask.descriptor("mask") if mask else None,
                markup.descriptor("markup") if markup else None,
                form_values=form,
                image_references=not form,
                unknown_model=_GPT,
            )
        )
    else:
        names = ["image"] * len(images)
        if not form and body.kind != "empty":
            raise bad_request(
                "Variations take a multipart/form-data body.", "image", "invalid_value"
            )
        image = images[0] if images else None
        if len(images) > 1:
            raise bad_request("Variations take exactly one image.", "image", "invalid_value")
        _raise_first(
            validate_variation(
                params,
                image.descriptor("image") if image else None,
                form_values=form,
                unknown_model=_GPT,
            )
        )
    # Decode only what passed validation: a corrupt body is then the one problem left.
    pictures = [decode_picture(upload, name) for upload, name in zip(images, names, strict=True)]
    job = _defaults(operation, params, images, pictures, form)
    job.mask_picture = decode_picture(mask, "mask") if mask else None
    job.markup_picture = decode_picture(markup, "markup") if markup else None
    return job


def _image_param(upload: Upload, index: int, count: int, form: bool) -> str:
    if not form:
        return upload.field  # already images[i]
    if upload.field == "image" and count == 1:
        return "image"
    return f"image[{index}]"


def _int(params: dict[str, Any], name: str, default: int, form: bool) -> int:
    """A validated integer parameter, read exactly as validation read it."""
    parsed = parse_integer(params.get(name), form_values=form)
    return default if parsed is None else parsed


def _size(
    operation: Operation, rules: ModelRules, size: object, pictures: list[Image.Image]
) -> tuple[int, int]:
    """The output size; ``auto`` on an edit keeps the input's size when the model can
    make it (so unmasked pixels stay exactly as uploaded), else the closest shape."""
    text = size if isinstance(size, str) else rules.default_size
    dims = parse_size(text)
    if dims is not None:
        return dims
    if text != "auto" or operation is not Operation.EDIT or not pictures:
        return 1024, 1024
    width, height = pictures[0].size
    if size_allowed(rules, f"{width}x{height}"):
        return width, height
    return min(_AUTO_SIZES, key=lambda wh: abs(wh[0] / wh[1] - width / height))


def _defaults(
    operation: Operation,
    params: dict[str, Any],
    images: list[Upload],
    pictures: list[Image.Image],
    form: bool,
) -> Job:
    model = resolve_model(operation, params) or ""
    rules = rules_for(model) or GPT_LIKE_DEFAULT
    width, height = _size(operation, rules, params.get("size"), pictures)
    quality = params.get("quality") or "auto"
    if rules.gpt_image:
        quality = "medium" if quality == "auto" else quality
    frame_duration_ms = round(_int(params, "frame_duration_ms", 200, form), -1)
    return Job(
        operation=operation,
        model=model,
        rules=rules,
        prompt=str(params.get("prompt") or ""),
        n=_int(params, "n", 1, form),
        width=width,
        height=height,
        quality=str(quality),
        output_format=str(params.get("output_format") or "png") if rules.gpt_image else "png",
        transparent=params.get("background") == "transparent",
        compression=_int(params, "output_compression", 100, form),
        response_format=(
            "b64_json" if rules.gpt_image else str(params.get("response_format") or "url")
        ),
        stream=parse_boolean(params.get("stream"), form_values=form) is True,
        partial_images=_int(params, "partial_images", 0, form),
        style=str(params.get("style") or "vivid"),
        frame_count=_int(params, "frame_count", 9, form),
        frame_duration_ms=min(_MAX_FRAME_DURATION_MS, max(10, frame_duration_ms)),
        images=images,
        pictures=pictures,
    )
