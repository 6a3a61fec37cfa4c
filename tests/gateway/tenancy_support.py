"""Clients files for gateway tests: clients with fresh tokens and their policies."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import grpc
import tomli_w

from imagegate_server.clients.tokens import generate


class ClientsFile:
    """A clients file the test edits; every ``add`` returns the client's new token."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._document: dict[str, Any] = {"defaults": {}, "clients": {}}
        self.write()

    def defaults(self, **policy: Any) -> None:
        self._document["defaults"] = policy
        self.write()

    def add(self, name: str, **policy: Any) -> str:
        client = self._document["clients"].setdefault(name, {"tokens": []})
        client.update(policy)
        token = generate()
        client["tokens"].append(
            {
                "id": token.token_id,
                "sha256": token.sha256,
                "created": datetime.datetime.now(datetime.UTC).replace(microsecond=0),
            }
        )
        self.write()
        return token.token

    def revoke(self, name: str, token: str) -> None:
        tokens = self._document["clients"][name]["tokens"]
        tokens[:] = [t for t in tokens if not token.startswith(f"igk_{t['id']}_")]
        self.write()

    def write(self) -> None:
        self.path.write_bytes(tomli_w.dumps(self._document).encode())


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def code_of(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, grpc.aio.AioRpcError | grpc.RpcError)
    return error.code()  # type: ignore[no-any-return,union-attr]
