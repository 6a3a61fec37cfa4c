"""OpenAI's request rules for the three Images operations, as pure functions.

Both callers use the same functions on an OpenAI-shaped parameter dict:

* the gateway, before going upstream, so a bad request costs nothing (it maps each
  :class:`Violation` to a gRPC ``BadRequest.FieldViolation``);
* the emulator, to answer exactly what OpenAI would (it returns the first violation
  as a 400 ``invalid_request_error``).

Nothing here does I/O or raises on bad input; every problem is a violation. The
package: ``results`` (what a check finds), ``checker`` (reading values while
collecting violations), ``params`` (parameter rules), ``files`` (upload rules),
``references`` (JSON image references), ``operations`` (the entry points).
"""

from imagegate_server.validation.checker import parse_boolean, parse_integer
from imagegate_server.validation.operations import (
    validate_edit,
    validate_generation,
    validate_variation,
)
from imagegate_server.validation.results import (
    Code,
    FileDescriptor,
    UnknownModelPolicy,
    Violation,
)

__all__ = [
    "Code",
    "FileDescriptor",
    "UnknownModelPolicy",
    "Violation",
    "parse_boolean",
    "parse_integer",
    "validate_edit",
    "validate_generation",
    "validate_variation",
]
