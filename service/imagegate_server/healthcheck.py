"""``imagegate healthcheck``: asks a running server's grpc.health.v1 service.

Meant for container health checks and CI probes, so it needs nothing but the
installed package (no ``grpc_health_probe`` binary) and answers with an exit code:
0 when the service reports SERVING, 1 for anything else (NOT_SERVING, unknown
service, nothing listening, timeout), with one line on stderr saying which.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

# gRPC is imported where it is used: cli.py imports this module for --help.

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 3.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "healthcheck",
        help="exit 0 if a server's gRPC health service reports SERVING, 1 otherwise",
        description=(
            "Calls grpc.health.v1.Health/Check on TARGET. Exit code 0 when the service "
            "reports SERVING; 1 otherwise, with one line on stderr saying why."
        ),
    )
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        metavar="HOST:PORT",
        help=f"server address (default: {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--service",
        default="",
        metavar="NAME",
        help='service name to ask about; "" (the default) means the whole server',
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"deadline for the call in seconds (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.set_defaults(handler=run)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2

    target: str = args.target
    service: str = args.service
    label = f"{target} service {service!r}" if service else f"{target} (server)"
    status = check(target, service, args.timeout)
    if isinstance(status, str):
        print(f"imagegate healthcheck: {label}: {status}", file=sys.stderr)
        return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    if status == health_pb2.HealthCheckResponse.SERVING:
        print(f"{label}: {name}")
        return 0
    print(f"imagegate healthcheck: {label}: {name}", file=sys.stderr)
    return 1


def check(target: str, service: str, timeout: float) -> int | str:
    """The reported ServingStatus, or a short reason when there is no answer."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.RpcError as error:
        return _describe(error, timeout)
    except ValueError as error:  # e.g. a malformed target
        return f"bad target: {error}"
    status: int = response.status
    return status


def _describe(error: grpc.RpcError, timeout: float) -> str:
    import grpc

    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else None
    if code is grpc.StatusCode.NOT_FOUND:
        return "SERVICE_UNKNOWN (the server does not know this service)"
    if code is grpc.StatusCode.UNAVAILABLE:
        return f"not reachable ({details or 'unavailable'})"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within {timeout:g}s"
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return "no grpc.health.v1 service on this server"
    name = code.name if code is not None else "error"
    return f"{name}: {details or 'health check failed'}"
