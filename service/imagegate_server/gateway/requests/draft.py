"""One call's request between its parameters and its uploads: a :class:`Draft`.

Its first pass judges the parameters and declares the files before any upload
byte is read; :meth:`Draft.finish` receives the uploads and judges them with what
their headers say, then hands on the request and whether OpenAI may stream it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.errors import InvalidRequest
from imagegate_server.gateway.requests import params as mapping
from imagegate_server.gateway.requests.spool import CallSpool
from imagegate_server.gateway.requests.uploads import Upload, UploadLimits, drain
from imagegate_server.models import Operation, rules_for
from imagegate_server.settings import Settings
from imagegate_server.upstream import ImagesRequest, UploadFile
from imagegate_server.validation import Violation, validate_edit, validate_variation

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
        spool: CallSpool,
    ) -> None:
        self._settings = settings
        self.operation = operation
        self._parameters = parameters
        self.params = params
        """OpenAI's parameters (validated once so far)."""
        self._streaming = streaming
        self._upload = Upload(limits, spool)
        """Files the parameters declare; a call that declares none takes no chunk."""

    @property
    def parameters(self) -> Message:
        """The parameters message as the caller sent it."""
        return self._parameters

    @property
    def model(self) -> str:
        return str(self.params["model"])

    @property
    def n(self) -> int:
        n = self.params.get("n")
        return n if isinstance(n, int) and n > 0 else 1

    @property
    def delivery(self) -> int:
        """The parameters' ``delivery``: a ``Delivery`` number (0: unset), not yet
        judged (an unknown number is the edge's to refuse)."""
        return int(getattr(self._parameters, "delivery", 0))

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

    def reserve_spool(self) -> None:
        """Reserve the disk the declared files need, before the go-ahead for them
        (:class:`~imagegate_server.errors.LimitRefused` past the client's quota)."""
        self._upload.reserve_disk()

    @property
    def owed_bytes(self) -> int:
        """File bytes the caller declared and has not sent (yet)."""
        return self._upload.owed

    # -- the second pass: with the uploads --------------------------------------------

    async def finish(self, chunks: Chunks) -> PreparedRequest:
        """Receive the uploads (enforcing their caps as they arrive), judge the files,
        and hand the request on; the returned request owns the upload spools."""
        upload = self._upload
        try:
            await drain(chunks, upload)
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


def _can_stream(params: dict[str, Any], operation: Operation) -> bool:
    if operation is Operation.VARIATION or params.get("output_format") in _UNSTREAMABLE_FORMATS:
        return False
    rules = rules_for(params["model"])
    if rules is None:
        return True  # unknown models are newer GPT image models, which stream
    accepted = rules.generation_params if operation is Operation.GENERATION else rules.edit_params
    return rules.gpt_image and "stream" in accepted and Operation.GENERATION in rules.operations
