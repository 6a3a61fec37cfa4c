"""What makes two requests "the same" for AIP-155: a digest per parameter and per file.

A request id that comes back must carry the same request: the same parameters (as
the caller set them: an unset field differs from one set to its default) and the
same upload bytes. Each set field of the parameters message gets a digest under
its contract path (``parameters.prompt``); each uploaded file one of its bytes
(``parameters.images[0]``, ``parameters.mask``...), so a repeated request id with
other parameters is refused naming the first field that differs, not just "no".
The whole request's fingerprint is the digest of those, plus which RPC shape it
came through (``rpc``: a job, or the synchronous call's operation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from imagegate_server.errors import AlreadyExists

RPC_FIELD = "rpc"
"""The pseudo-field that differs when one request id is used on two RPC kinds."""
FILE_FIELDS = {1: "parameters.images", 2: "parameters.mask", 3: "parameters.markup"}
"""``FileRole`` number -> the path of its declaration."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def field_digests(
    rpc: str, parameters: Message, files: Mapping[tuple[int, int], str]
) -> dict[str, str]:
    """``rpc``: the call's shape (``job:edit``, ``call:generation``); ``files``: (role,
    index) -> the sha256 of that file's bytes."""
    digests = {RPC_FIELD: _digest(rpc.encode())}
    for descriptor, value in parameters.ListFields():
        path = f"parameters.{descriptor.name}"
        if descriptor.message_type is not None:
            items = value if _repeated(descriptor) else [value]
            if descriptor.message_type.GetOptions().map_entry:
                items = [f"{k}={v}".encode() for k, v in sorted(value.items())]
                digests[path] = _digest(b"\0".join(items))
                continue
            digests[path] = _digest(
                b"\0".join(m.SerializeToString(deterministic=True) for m in items)
            )
        elif _repeated(descriptor):
            digests[path] = _digest("\0".join(repr(v) for v in value).encode())
        else:
            digests[path] = _digest(repr(value).encode())
    for (role, index), sha in sorted(files.items()):
        base = FILE_FIELDS.get(role, "parameters.files")
        path = f"{base}[{index}]" if role == 1 else base
        digests[f"{path}#bytes"] = sha[:32]
    return digests


def _repeated(descriptor: FieldDescriptor) -> bool:
    return bool(descriptor.is_repeated)


def fingerprint(digests: Mapping[str, str]) -> str:
    return _digest("\n".join(f"{k}:{v}" for k, v in sorted(digests.items())).encode())


def check_same(request_id: str, kept: Mapping[str, str], given: Mapping[str, str]) -> None:
    """Raise :class:`AlreadyExists` naming the first field whose digest differs (the
    RPC, then the parameters in the contract's order, then the files)."""
    for path in [*kept, *(p for p in given if p not in kept)]:
        if kept.get(path) != given.get(path):
            raise AlreadyExists(request_id, _field_name(path))


def _field_name(path: str) -> str:
    if path == RPC_FIELD:
        return "request_id"
    return path.removesuffix("#bytes")
