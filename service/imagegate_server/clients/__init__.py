"""Who is calling: the clients file, its tokens, certificate identities and policies.

Modules: :mod:`.tokens` (token format, generation, parsing, hashing),
:mod:`.schema` (the file's pydantic models), :mod:`.fileformat` (TOML/YAML reading
and atomic writing), :mod:`.policy` (one client's effective limits),
:mod:`.registry` (lookups by token or identity), :mod:`.reload` (the live file),
:mod:`.startup` (the secure-by-default start-up rule), and ``imagegate clients
add|list|revoke``: :mod:`.command` (parsers and handlers), :mod:`.editing` (finding,
reading and editing the file) and :mod:`.listing` (what ``list`` prints).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegate_server.clients.fileformat import ClientsFileError
    from imagegate_server.clients.policy import Policy
    from imagegate_server.clients.registry import Client, ClientRegistry, TokenInfo
    from imagegate_server.clients.reload import ClientsFile, load_registry
    from imagegate_server.clients.startup import is_loopback, startup_auth_problem
    from imagegate_server.clients.tokens import from_authorization

# Imported on first use: ``imagegate --help`` imports .command, which must not pay
# for pydantic models and the TOML/YAML libraries.
_LAZY = {
    "ClientsFileError": "fileformat",
    "Policy": "policy",
    "Client": "registry",
    "ClientRegistry": "registry",
    "TokenInfo": "registry",
    "ClientsFile": "reload",
    "load_registry": "reload",
    "is_loopback": "startup",
    "startup_auth_problem": "startup",
    "from_authorization": "tokens",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "Client",
    "ClientRegistry",
    "ClientsFile",
    "ClientsFileError",
    "Policy",
    "TokenInfo",
    "from_authorization",
    "is_loopback",
    "load_registry",
    "startup_auth_problem",
]
