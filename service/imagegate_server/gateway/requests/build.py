"""The requests stage: a parameters message (and uploaded files) -> a validated
:class:`ImagesRequest`.

Parameters are mapped to OpenAI's once and validated in at most two passes: before
any upload byte is read (so a bad request costs neither the caller's bandwidth nor
ours) and, for uploads, once more with what the files' headers say. Everything
OpenAI would reject anyway is rejected here, before any byte goes upstream.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.errors import FieldViolation, InvalidRequest, ModelRetired
from imagegate_server.gateway.requests import params as mapping
from imagegate_server.gateway.requests.uploads import Upload, UploadedFile, UploadLimits
from imagegate_server.models import Operation, replacement_for, retired, rules_for
from imagegate_server.settings import Settings
from imagegate_server.upstream import ImagesRequest, UploadFile
from imagegate_server.validation import validate_edit, validate_generation, validate_variation

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

Chunks = AsyncIterator[params_pb2.FileChunk]


@dataclass
class PreparedRequest:
    """A validated request and the upload spools its files read from (closed on exit)."""

    request: ImagesRequest
    upload: Upload | None = None

    def __enter__(self) -> ImagesRequest:
        return self.request

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.upload is not None:
            self.upload.close()


class RequestBuilder:
    def __init__(self, settings: Settings, *, refuse_retired: bool = False) -> None:
        self._settings = settings
        self._refuse_retired = refuse_retired
        self._limits = UploadLimits(settings.max_request_bytes, settings.spool_threshold_bytes)

    async def prepare(
        self, operation: Operation, parameters: Message, chunks: Chunks, *, streaming: bool
    ) -> PreparedRequest:
        """``streaming``: the caller takes a stream, so OpenAI may stream if it can."""
        if operation is Operation.GENERATION:
            assert isinstance(parameters, params_pb2.GenerationParameters)
            return await self._generation(parameters, chunks, streaming)
        if operation is Operation.EDIT:
            assert isinstance(parameters, params_pb2.EditParameters)
            return await self._edit(parameters, chunks, streaming)
        assert isinstance(parameters, params_pb2.VariationParameters)
        return await self._variation(parameters, chunks)

    async def _generation(
        self, p: params_pb2.GenerationParameters, chunks: Chunks, streaming: bool
    ) -> PreparedRequest:
        params = self._openai_params(p, Operation.GENERATION, streaming)
        self._check(p, params, mapping.field_violations(validate_generation(params)))
        await _drain(chunks, Upload(self._limits))  # a generation declares no file
        return self._done(p, params, Operation.GENERATION, streaming)

    async def _edit(
        self, p: params_pb2.EditParameters, chunks: Chunks, streaming: bool
    ) -> PreparedRequest:
        params = self._openai_params(p, Operation.EDIT, streaming)
        if p.image_references or p.HasField("mask_reference"):
            return await self._referenced_edit(p, params, chunks, streaming)
        if not p.images:
            # Every edit needs an image, whatever the model: say so before any upload.
            raise InvalidRequest.one(
                "parameters.images", "declare at least one image", "missing_required_parameter"
            )
        upload = Upload(self._limits)
        try:
            for index, info in enumerate(p.images):
                self._declare(upload, IMAGE, index, f"parameters.images[{index}]", info, params)
            if p.HasField("mask"):
                self._declare(upload, MASK, 0, "parameters.mask", p.mask, params)
            if p.HasField("markup"):
                self._declare(upload, MARKUP, 0, "parameters.markup", p.markup, params)
            early = validate_edit(params, [], form_values=False, image_references=False)
            early = [v for v in early if not v.param.startswith("image")]
            self._check(p, params, mapping.field_violations(early, EDIT_RENAMES))
            await _drain(chunks, upload)
            images = [upload.get(IMAGE, i) for i in range(len(p.images))]
            mask, markup = upload.get(MASK), upload.get(MARKUP)
            if rules_for(params["model"]) is None:
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
            files: list[UploadFile] = [file.upload_file("image") for file in images if file]
            if mask is not None:
                files.append(mask.upload_file("mask"))
            if markup is not None:
                files.append(markup.upload_file("markup"))
        except BaseException:
            upload.close()
            raise
        return self._done(p, params, Operation.EDIT, streaming, files, upload)

    async def _referenced_edit(
        self,
        p: params_pb2.EditParameters,
        params: dict[str, Any],
        chunks: Chunks,
        streaming: bool,
    ) -> PreparedRequest:
        """An edit of images OpenAI fetches itself (URLs, file ids): a JSON body."""
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
        return self._done(p, params, Operation.EDIT, streaming)

    async def _variation(
        self, p: params_pb2.VariationParameters, chunks: Chunks
    ) -> PreparedRequest:
        params = self._openai_params(p, Operation.VARIATION, streaming=False)
        if not p.HasField("image"):
            raise InvalidRequest.one(
                "parameters.image", "declare the input image", "missing_required_parameter"
            )
        upload = Upload(self._limits)
        try:
            self._declare(upload, IMAGE, 0, "parameters.image", p.image, params)
            early = validate_variation(params, None, form_values=False)
            early = [v for v in early if v.param != "image"]
            self._check(p, params, mapping.field_violations(early))
            await _drain(chunks, upload)
            image = upload.get(IMAGE)
            assert image is not None
            if rules_for(params["model"]) is None:
                _check_image_types([image])
            violations = validate_variation(params, image.descriptor("image"), form_values=False)
            self._check(p, params, mapping.field_violations(violations))
            files = [image.upload_file("image")]
        except BaseException:
            upload.close()
            raise
        return self._done(p, params, Operation.VARIATION, False, files, upload)

    # -- steps every operation shares --------------------------------------------

    def _openai_params(self, p: Message, operation: Operation, streaming: bool) -> dict[str, Any]:
        params = mapping.to_openai(p)
        default = (
            self._settings.default_variation_model
            if operation is Operation.VARIATION
            else self._settings.default_model
        )
        params.setdefault("model", default)
        if self._refuse_retired:
            _refuse_if_retired(params["model"], operation)
        if not streaming:
            # The unary RPCs return the whole result; partial images are for streams.
            params.pop("partial_images", None)
        return params

    def _declare(
        self,
        upload: Upload,
        role: int,
        index: int,
        path: str,
        info: params_pb2.FileInfo,
        params: dict[str, Any],
    ) -> None:
        rules = rules_for(params["model"])
        if rules is None:
            cap = self._settings.max_file_bytes
        else:
            cap = rules.mask_max_bytes if role == MASK else rules.image_max_bytes
        upload.declare(role, index, path, info, cap)

    def _check(self, p: Message, params: dict[str, Any], violations: list[FieldViolation]) -> None:
        extra = getattr(p, "extra_parameters")  # noqa: B009 (every parameters message has it)
        allowlist = self._settings.extra_parameters
        violations = violations + mapping.check_extra_parameters(params, extra, allowlist)
        if violations:
            raise InvalidRequest(violations)

    def _done(
        self,
        p: Message,
        params: dict[str, Any],
        operation: Operation,
        streaming: bool,
        files: list[UploadFile] | None = None,
        upload: Upload | None = None,
    ) -> PreparedRequest:
        mapping.add_extra_parameters(params, getattr(p, "extra_parameters"))  # noqa: B009
        stream = streaming and _can_stream(params, operation)
        request = ImagesRequest(operation, params, files or [], stream)
        return PreparedRequest(request, upload)


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
    """The magic-byte check that known models get from their rules (validation)."""
    violations = [
        FieldViolation(
            file.path, "the content must be a PNG, JPEG, WebP or GIF image", "invalid_image_format"
        )
        for file in files
        if file is not None and (file.info is None or file.info.format not in _IMAGE_FORMATS)
    ]
    if violations:
        raise InvalidRequest(violations)


async def _drain(chunks: Chunks, upload: Upload) -> None:
    position = 0
    async for chunk in chunks:
        upload.add(chunk, position)
        position += 1
    upload.finish()


def _can_stream(params: dict[str, Any], operation: Operation) -> bool:
    if operation is Operation.VARIATION or params.get("output_format") in _UNSTREAMABLE_FORMATS:
        return False
    rules = rules_for(params["model"])
    if rules is None:
        return True  # unknown models are newer GPT image models, which stream
    accepted = rules.generation_params if operation is Operation.GENERATION else rules.edit_params
    return rules.gpt_image and "stream" in accepted and Operation.GENERATION in rules.operations
