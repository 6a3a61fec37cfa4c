"""The requests stage: a parameters message (and uploaded files) -> a validated
:class:`ImagesRequest`.

Parameters are mapped to OpenAI's once and validated in at most two passes: before
any upload byte is read (so a bad request costs neither the caller's bandwidth nor
ours) and, for uploads, once more with what the files' headers say. Everything
OpenAI would reject anyway is rejected here, before any byte goes upstream.
Between the two passes a call's request is a :class:`~.draft.Draft`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.errors import ModelRetired
from imagegate_server.gateway.requests import params as mapping
from imagegate_server.gateway.requests.draft import Draft
from imagegate_server.gateway.requests.spool import CallSpool, DiskAccount, DiskQuota
from imagegate_server.gateway.requests.spool_directory import SpoolDirectory
from imagegate_server.gateway.requests.uploads import UploadLimits
from imagegate_server.models import Operation, replacement_for, retired, rules_for
from imagegate_server.settings import Settings
from imagegate_server.validation import validate_generation


class RequestBuilder:
    """Starts a :class:`Draft` per call; the draft finishes once the uploads are in."""

    def __init__(
        self,
        settings: Settings,
        *,
        refuse_retired: bool = False,
        on_spooled: Callable[[int], None] | None = None,
    ) -> None:
        """Prepares the spool directory (:class:`~imagegate_server.errors.StartupError`
        when it cannot be used); ``on_spooled`` hears the bytes spooled on disk now."""
        self._settings = settings
        self._refuse_retired = refuse_retired
        self._limits = UploadLimits(settings.max_request_bytes, settings.spool_threshold_bytes)
        self.spool_directory = SpoolDirectory.prepare(settings.spool_dir)
        self.disk = DiskQuota(on_spooled)
        """Spooled bytes per client in this process."""

    def disk_account(self, client: str, max_spooled_bytes: int | None) -> DiskAccount:
        """A call's share of its client's spool quota, for :meth:`start`."""
        return self.disk.account(client, max_spooled_bytes)

    def start(
        self,
        operation: Operation,
        parameters: Message,
        *,
        streaming: bool,
        disk: DiskAccount | None = None,
    ) -> Draft:
        """Map and judge the parameters before any upload byte is read.

        ``streaming``: the caller takes a stream, so OpenAI may stream if it can.
        ``disk``: where the call's spooled bytes count (None: nowhere).
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
        spool = CallSpool(self._limits.spool_at, self.spool_directory, disk)
        draft = Draft(self._settings, operation, parameters, params, streaming, self._limits, spool)
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
