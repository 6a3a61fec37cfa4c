"""Validated upstream calls, built from the contract's parameters messages.

Each builder turns a parameters message (plus uploaded files) into an
:class:`UpstreamCall`: the path, the OpenAI parameters, the files, and whether
OpenAI can stream it. Everything OpenAI would reject anyway is rejected here,
before any byte goes upstream.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.errors import FieldViolation, InvalidRequest, ModelRetired
from imagegate_server.gateway import params as mapping
from imagegate_server.gateway.uploads import Upload, UploadedFile, UploadLimits, receive
from imagegate_server.models import ModelRules, Operation, replacement_for, retired, rules_for
from imagegate_server.settings import Settings
from imagegate_server.upstream.client import Body, FilePart
from imagegate_server.validation import (
    validate_edit,
    validate_generation,
    validate_variation,
)

IMAGE, MASK, MARKUP = (
    params_pb2.FILE_ROLE_IMAGE,
    params_pb2.FILE_ROLE_MASK,
    params_pb2.FILE_ROLE_MARKUP,
)
# OpenAI's names for upload violations -> the contract's field names.
EDIT_RENAMES = {"image": "images"}
JSON_EDIT_RENAMES = {"images": "image_references", "mask": "mask_reference"}
# Formats OpenAI cannot stream (GIF and SVG answers come whole).
_UNSTREAMABLE_FORMATS = frozenset({"gif", "svg"})
# Input files any OpenAI image model may take. Unknown models skip the per-model
# rules, not these: bytes of another type would go out mislabelled.
_IMAGE_FORMATS = frozenset({"png", "jpeg", "webp", "gif"})


@dataclass
class UpstreamCall:
    path: str
    params: dict[str, Any]
    files: list[FilePart] = field(default_factory=list)
    streamable: bool = False
    """OpenAI can stream this call as SSE (GPT image models, not GIF/SVG)."""
    upload: Upload | None = None

    def body(self, stream: bool) -> Body:
        params = dict(self.params, stream=True) if stream else self.params
        if self.files:
            return Body(form=mapping.to_form(params), files=self.files)
        return Body(json=params)

    def close(self) -> None:
        if self.upload is not None:
            self.upload.close()


class CallBuilder:
    def __init__(self, settings: Settings, *, refuse_retired: bool = False) -> None:
        self._settings = settings
        self._refuse_retired = refuse_retired
        self._limits = UploadLimits(settings.max_request_bytes, settings.spool_threshold_bytes)

    def generation(self, p: params_pb2.GenerationParameters, streaming: bool) -> UpstreamCall:
        params = self._openai_params(
            p, self._settings.default_model, streaming, Operation.GENERATION
        )
        violations = mapping.field_violations(validate_generation(params))
        self._check(p, params, violations)
        mapping.add_extra_parameters(params, p.extra_parameters)
        return UpstreamCall(
            "images/generations", params, streamable=streaming and _can_stream(params, "generation")
        )

    async def edit(self, stream: AsyncIterator[Message], streaming: bool) -> UpstreamCall:
        message, chunks = await receive(stream)
        assert isinstance(message, params_pb2.EditParameters)
        p = message
        params = self._openai_params(p, self._settings.default_model, streaming, Operation.EDIT)
        if p.image_references or p.HasField("mask_reference"):
            return await self._json_edit(p, params, chunks, streaming)
        if not p.images:
            # Every edit needs an image, whatever the model: say so before any upload.
            raise InvalidRequest.one(
                "parameters.images", "declare at least one image", "missing_required_parameter"
            )
        rules = rules_for(params["model"])
        upload = Upload(self._limits)
        try:
            for index, info in enumerate(p.images):
                cap = rules.image_max_bytes if rules else self._settings.max_file_bytes
                upload.declare(IMAGE, index, f"parameters.images[{index}]", info, cap)
            if p.HasField("mask"):
                cap = rules.mask_max_bytes if rules else self._settings.max_file_bytes
                upload.declare(MASK, 0, "parameters.mask", p.mask, cap)
            if p.HasField("markup"):
                cap = rules.image_max_bytes if rules else self._settings.max_file_bytes
                upload.declare(MARKUP, 0, "parameters.markup", p.markup, cap)
            # Judge the parameters before reading any upload byte: a bad request
            # should cost neither the caller's bandwidth nor ours.
            early = [
                v
                for v in validate_edit(params, [], form_values=False, image_references=False)
                if not v.param.startswith("image")
            ]
            self._check(p, params, mapping.field_violations(early, EDIT_RENAMES))
            await _drain(chunks, upload)
            images = [upload.get(IMAGE, i) for i in range(len(p.images))]
            mask, markup = upload.get(MASK), upload.get(MARKUP)
            if rules is None:
                _check_image_types([*images, mask, markup])
            violations = validate_edit(
                params,
                [file.descriptor(f"images[{i}]") for i, file in enumerate(images) if file],
                mask.descriptor("mask") if mask else None,
                markup.descriptor("markup") if markup else None,
                form_values=False,
                image_references=False,
            )
            self._check(p, params, mapping.field_violations(violations, EDIT_RENAMES))
            image_field = "image" if len(images) == 1 else "image[]"
            files = [file.part(image_field) for file in images if file]
            files += [
                file.part(name) for name, file in (("mask", mask), ("markup", markup)) if file
            ]
        except BaseException:
            upload.close()
            raise
        mapping.add_extra_parameters(params, p.extra_parameters)
        return UpstreamCall(
            "images/edits",
            params,
            files,
            streamable=streaming and _can_stream(params, "edit"),
            upload=upload,
        )

    async def _json_edit(
        self,
        p: params_pb2.EditParameters,
        params: dict[str, Any],
        chunks: AsyncIterator[params_pb2.FileChunk],
        streaming: bool,
    ) -> UpstreamCall:
        if p.images or p.HasField("mask") or p.HasField("markup"):
            raise InvalidRequest.one(
                "parameters.image_references",
                "referenced and uploaded images cannot be mixed in one request",
            )
        params["images"] = [
            mapping.to_openai(ref, f"parameters.image_references[{i}]")
            for i, ref in enumerate(p.image_references)
        ]
        if p.HasField("mask_reference"):
            params["mask"] = mapping.to_openai(p.mask_reference, "parameters.mask_reference")
        violations = validate_edit(params, [], form_values=False, image_references=True)
        self._check(p, params, mapping.field_violations(violations, JSON_EDIT_RENAMES))
        await _drain(chunks, Upload(self._limits))  # no file is declared: any chunk is an error
        mapping.add_extra_parameters(params, p.extra_parameters)
        return UpstreamCall(
            "images/edits", params, streamable=streaming and _can_stream(params, "edit")
        )

    async def variation(self, stream: AsyncIterator[Message]) -> UpstreamCall:
        message, chunks = await receive(stream)
        assert isinstance(message, params_pb2.VariationParameters)
        p = message
        params = self._openai_params(
            p, self._settings.default_variation_model, False, Operation.VARIATION
        )
        if not p.HasField("image"):
            raise InvalidRequest.one(
                "parameters.image", "declare the input image", "missing_required_parameter"
            )
        rules = rules_for(params["model"])
        upload = Upload(self._limits)
        try:
            cap = rules.image_max_bytes if rules else self._settings.max_file_bytes
            upload.declare(IMAGE, 0, "parameters.image", p.image, cap)
            early = [
                v for v in validate_variation(params, None, form_values=False) if v.param != "image"
            ]
            self._check(p, params, mapping.field_violations(early))
            await _drain(chunks, upload)
            image = upload.get(IMAGE)
            assert image is not None
            if rules is None:
                _check_image_types([image])
            violations = validate_variation(params, image.descriptor("image"), form_values=False)
            self._check(p, params, mapping.field_violations(violations))
            files = [image.part("image")]
        except BaseException:
            upload.close()
            raise
        mapping.add_extra_parameters(params, p.extra_parameters)
        return UpstreamCall("images/variations", params, files, upload=upload)

    def _openai_params(
        self, p: Message, default_model: str, streaming: bool, operation: Operation
    ) -> dict[str, Any]:
        params = mapping.to_openai(p)
        params.setdefault("model", default_model)
        if self._refuse_retired:
            _refuse_if_retired(params["model"], operation)
        if not streaming:
            # The unary RPCs return the whole result; partial images are for streams.
            params.pop("partial_images", None)
        return params

    def _check(self, p: Message, params: dict[str, Any], violations: list[FieldViolation]) -> None:
        extra = getattr(p, "extra_parameters")  # noqa: B009 (every parameters message has it)
        allowlist = self._settings.extra_parameters
        violations = violations + mapping.check_extra_parameters(params, extra, allowlist)
        if violations:
            raise InvalidRequest(violations)


def _refuse_if_retired(model: str, operation: Operation) -> None:
    # Before any upload byte is read: the caller learns what to use instead at the
    # cost of one message, not of a round trip that OpenAI would refuse.
    today = datetime.datetime.now(datetime.UTC).date()
    lifecycle = retired(model, today)
    if lifecycle is None:
        return
    replacement = replacement_for(model, today)
    rules = rules_for(replacement)
    served = rules is not None and operation in rules.operations
    raise ModelRetired(model, lifecycle.shutdown, replacement, operation_served=served)


def _check_image_types(files: list[UploadedFile | None]) -> None:
    """The magic-byte check that known models get from their rules (validation.py)."""
    violations = [
        FieldViolation(
            file.path, "the content must be a PNG, JPEG, WebP or GIF image", "invalid_image_format"
        )
        for file in files
        if file is not None and (file.info is None or file.info.format not in _IMAGE_FORMATS)
    ]
    if violations:
        raise InvalidRequest(violations)


async def _drain(chunks: AsyncIterator[params_pb2.FileChunk], upload: Upload) -> None:
    position = 0
    async for chunk in chunks:
        upload.add(chunk, position)
        position += 1
    upload.finish()


def _can_stream(params: dict[str, Any], operation: str) -> bool:
    if params.get("output_format") in _UNSTREAMABLE_FORMATS:
        return False
    rules: ModelRules | None = rules_for(params["model"])
    if rules is None:
        return True  # unknown models are newer GPT image models, which stream
    accepted = rules.generation_params if operation == "generation" else rules.edit_params
    return rules.gpt_image and "stream" in accepted and Operation.GENERATION in rules.operations
