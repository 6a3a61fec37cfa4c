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

from imagegate_server.errors import InvalidRequest, ModelRetired
from imagegate_server.gateway.requests import params as mapping
from imagegate_server.gateway.requests.uploads import Upload, UploadLimits
from imagegate_server.models import Operation, replacement_for, retired, rules_for
from imagegate_server.settings import Settings
from imagegate_server.upstream import ImagesRequest, UploadFile
from imagegate_server.validation import (
    Violation,
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

Chunks = AsyncIterator[params_pb2.FileChunk]


@dataclass
class PreparedRequest:
    """A validated request and the upload spools its files read from (closed on exit)."""

    request: ImagesRequest
    upload: Upload

    def __enter__(self) -> ImagesRequest:
        return self.request

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.upload.close()


class RequestBuilder:
    """Starts a :class:`Draft` per call; the draft finishes once the uploads are in."""

    def __init__(self, settings: Settings, *, refuse_retired: bool = False) -> None:
        self._settings = settings
        self._refuse_retired = refuse_retired
        self._limits = UploadLimits(settings.max_request_bytes, settings.spool_threshold_bytes)

    def start(self, operation: Operation, parameters: Message, *, streaming: bool) -> Draft:
        """Map and judge the parameters before any upload byte is read.

        ``streaming``: the caller takes a stream, so OpenAI may stream if it can.
        """
        params = mapping.to_openai(parameters)
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
        draft = Draft(self._settings, operation, parameters, params, streaming, self._limits)
        try:
            if operation is Operation.GENERATION:
                draft.check(validate_generation(params))
            elif operation is Operation.EDIT:
                assert isinstance(parameters, params_pb2.EditParameters)
                draft.start_edit(parameters)
            else:
                assert isinstance(parameters, params_pb2.VariationParameters)
                draft.start_variation(parameters)
        except BaseException:
            draft.close()
            raise
        return draft


class Draft:
    """One call's request between its parameters and its uploads.

    The edge reads what the call asks for (model, n, files) to judge it against the
    caller's policy and limits before any upload byte is read, may stamp the caller's
    identity into it, then :meth:`finish` receives and checks the uploads.
    """

    def __init__(
        self,
        settings: Settings,
        operation: Operation,
        parameters: Message,
        params: dict[str, Any],
        streaming: bool,
        limits: UploadLimits,
    ) -> None:
        self._settings = settings
        self.operation = operation
        self._parameters = parameters
        self.params = params
        """OpenAI's parameters (validated once so far)."""
        self._streaming = streaming
        self._upload = Upload(limits)
        """Files the parameters declare; a call that declares none takes no chunk."""

    @property
    def model(self) -> str:
        return str(self.params["model"])

    @property
    def n(self) -> int:
        n = self.params.get("n")
        return n if isinstance(n, int) and n > 0 else 1

    @property
    def input_images(self) -> int:
        """Images the call sends or references."""
        p = self._parameters
        if isinstance(p, params_pb2.EditParameters):
            return len(p.images) + len(p.image_references)
        return 1 if isinstance(p, params_pb2.VariationParameters) else 0

    def stamp_identity(self, identity: str) -> None:
        """Name the caller as OpenAI's end user, unless the call names one itself: in
        ``safety_identifier`` where the model takes it, else in ``user``."""
        if self.params.get("safety_identifier") or self.params.get("user"):
            return
        rules = rules_for(self.model)
        if rules is None:
            self.params["safety_identifier"] = identity  # newer GPT image models take it
            return
        accepted = {
            Operation.GENERATION: rules.generation_params,
            Operation.EDIT: rules.edit_params,
            Operation.VARIATION: rules.variation_params,
        }[self.operation]
        for name in ("safety_identifier", "user"):
            if name in accepted:
                self.params[name] = identity
                return

    # -- the first pass: before any upload byte --------------------------------------

    def check(self, violations: list[Violation], renames: dict[str, str] | None = None) -> None:
        found = mapping.field_violations(violations, renames)
        extra = getattr(self._parameters, "extra_parameters")  # noqa: B009 (all have it)
        found += mapping.check_extra_parameters(self.params, extra, self._settings.extra_parameters)
        if found:
            raise InvalidRequest(found)

    def start_edit(self, p: params_pb2.EditParameters) -> None:
        params, upload = self.params, self._upload
        if p.image_references or p.HasField("mask_reference"):
            self._start_referenced_edit(p)
            return
        if not p.images:
            # Every edit needs an image, whatever the model: say so before any upload.
            raise InvalidRequest.one(
                "parameters.images", "declare at least one image", "missing_required_parameter"
            )
        for index, info in enumerate(p.images):
            self._declare(upload, IMAGE, index, f"parameters.images[{index}]", info)
        if p.HasField("mask"):
            self._declare(upload, MASK, 0, "parameters.mask", p.mask)
        if p.HasField("markup"):
            self._declare(upload, MARKUP, 0, "parameters.markup", p.markup)
        early = validate_edit(params, [], form_values=False, image_references=False)
        self.check([v for v in early if not v.param.startswith("image")], EDIT_RENAMES)

    def _start_referenced_edit(self, p: params_pb2.EditParameters) -> None:
        """An edit of images OpenAI fetches itself (URLs, file ids): a JSON body."""
        if p.images or p.HasField("mask") or p.HasField("markup"):
            raise InvalidRequest.one(
                "parameters.image_references",
                "referenced and uploaded images cannot be mixed in one request",
            )
        self.params["images"] = [
            mapping.to_openai(ref, f"parameters.image_references[{i}]")
            for i, ref in enumerate(p.image_references)
        ]
        if p.HasField("mask_reference"):
            self.params["mask"] = mapping.to_openai(p.mask_reference, "parameters.mask_reference")
        violations = validate_edit(self.params, [], form_values=False, image_references=True)
        self.check(violations, JSON_EDIT_RENAMES)

    def start_variation(self, p: params_pb2.VariationParameters) -> None:
        if not p.HasField("image"):
            raise InvalidRequest.one(
                "parameters.image", "declare the input image", "missing_required_parameter"
            )
        self._declare(self._upload, IMAGE, 0, "parameters.image", p.image)
        early = validate_variation(self.params, None, form_values=False)
        self.check([v for v in early if v.param != "image"])

    def _declare(
        self, upload: Upload, role: int, index: int, path: str, info: params_pb2.FileInfo
    ) -> None:
        rules = rules_for(self.model)
        if rules is None:
            cap, formats = self._settings.max_file_bytes, _IMAGE_FORMATS
        elif role == IMAGE:
            cap, formats = rules.image_max_bytes, rules.input_image_formats
        else:  # a mask or markup: a PNG with alpha
            cap = rules.mask_max_bytes if role == MASK else rules.image_max_bytes
            formats = frozenset({"png"})
        upload.declare(role, index, path, info, cap, formats)

    # -- the second pass: with the uploads --------------------------------------------

    async def finish(self, chunks: Chunks) -> PreparedRequest:
        """Receive the uploads (enforcing their caps as they arrive), judge the files,
        and hand the request on; the returned request owns the upload spools."""
        upload = self._upload
        try:
            await _drain(chunks, upload)
            files = self._checked_files(upload)
        except BaseException:
            upload.close()
            raise
        mapping.add_extra_parameters(self.params, getattr(self._parameters, "extra_parameters"))  # noqa: B009
        stream = self._streaming and _can_stream(self.params, self.operation)
        request = ImagesRequest(self.operation, self.params, files, stream)
        return PreparedRequest(request, upload)

    def close(self) -> None:
        """Release the upload spools of a draft that will not be finished."""
        self._upload.close()

    def _checked_files(self, upload: Upload) -> list[UploadFile]:
        p, params = self._parameters, self.params
        if isinstance(p, params_pb2.EditParameters) and p.images:
            images = [upload.get(IMAGE, i) for i in range(len(p.images))]
            mask, markup = upload.get(MASK), upload.get(MARKUP)
            self.check(
                validate_edit(
                    params,
                    [file.descriptor(f"images[{i}]") for i, file in enumerate(images) if file],
                    mask.descriptor("mask") if mask else None,
                    markup.descriptor("markup") if markup else None,
                    form_values=False,
                    image_references=False,
                ),
                EDIT_RENAMES,
            )
            files = [file.upload_file("image") for file in images if file]
            if mask is not None:
                files.append(mask.upload_file("mask"))
            if markup is not None:
                files.append(markup.upload_file("markup"))
            return files
        if isinstance(p, params_pb2.VariationParameters):
            image = upload.get(IMAGE)
            assert image is not None
            self.check(validate_variation(params, image.descriptor("image"), form_values=False))
            return [image.upload_file("image")]
        return []


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
