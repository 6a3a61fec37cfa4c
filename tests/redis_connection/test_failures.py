"""Every answer of Redis that is not the limiter's business is a refusal with a reason
an operator can act on; everything else is "unreachable", with its cause. The errors
are made the way redis-py makes them from what Redis sends (its own parser)."""

from __future__ import annotations

import socket
import ssl

import pytest
from redis import exceptions as rx
from redis._parsers.base import BaseParser

from imagegate_server.redis_connection.failures import classify

SECRET = "hunter2-SECRET"


def answer(line: str) -> rx.RedisError:
    """The exception redis-py raises for the error reply ``-<line>``."""
    error = BaseParser.parse_error(line)
    assert isinstance(error, rx.RedisError)
    return error


@pytest.mark.parametrize(
    ("line", "code", "says"),
    [
        (
            "WRONGPASS invalid username-password pair or user is disabled.",
            "WRONGPASS",
            "IMAGEGATE_REDIS_PASSWORD",
        ),
        ("NOAUTH Authentication required.", "NOAUTH", "requires a password"),
        ("NOPERM this user has no permissions to run the 'evalsha' command", "NOPERM", "'evalsha'"),
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM", "maxmemory"),
        ("READONLY You can't write against a read only replica.", "READONLY", "replica"),
        ("CLUSTERDOWN The cluster is down", "CLUSTERDOWN", "hash slot"),
        ("MASTERDOWN Link with MASTER is down", "MASTERDOWN", "lost its primary"),
        ("LOADING Redis is loading the dataset in memory", "LOADING", "loading"),
        ("MOVED 3999 127.0.0.1:6381", "MOVED", "redis+cluster://"),
        ("ASK 3999 127.0.0.1:6381", "MOVED", "redis+cluster://"),
        ("CROSSSLOT Keys in request don't hash to the same slot", "CROSSSLOT", "a bug"),
        ("NOREPLICAS Not enough good replicas to write.", "NOREPLICAS", "min-replicas-to-write"),
        ("MISCONF Errors writing to the AOF file", "MISCONF", "disk"),
        ("BUSY Redis is busy running a script.", "BUSY", "long script"),
        ("ERR max number of clients reached", "ERR", "max number of clients"),
        ("ERR unknown command 'EVALSHA', with args beginning with:", "ERR", "unknown command"),
        ("ERR user_script:3: Script attempted to access a non local key", "ERR", "user_script:3"),
        ("ERR This instance has cluster support disabled", "NOT_CLUSTER", "not in cluster mode"),
    ],
)
def test_answers_are_refusals_named_by_their_code(line: str, code: str, says: str) -> None:
    failure = classify(answer(line), timeout_s=0.5)
    assert (failure.state, failure.code) == ("refusing", code)
    assert says in failure.reason


def test_in_a_cluster_redirections_are_redis_pys_and_only_a_loop_reaches_us() -> None:
    failure = classify(answer("MOVED 3999 127.0.0.1:6381"), timeout_s=0.5, cluster=True)
    assert failure.code == "REDIRECTS"
    assert (
        classify(rx.ClusterError("TTL exhausted."), timeout_s=0.5, cluster=True).code == "REDIRECTS"
    )


def test_a_cluster_that_cannot_start_is_named_by_what_its_seeds_said() -> None:
    # What redis-py's cluster client raises when every seed refused the password.
    try:
        try:
            raise answer("WRONGPASS invalid username-password pair or user is disabled.")
        except rx.RedisError as seed:
            raise rx.RedisClusterException("Redis Cluster cannot be connected.") from seed
    except rx.RedisClusterException as error:
        failure = classify(error, timeout_s=0.5, cluster=True)
    assert (failure.state, failure.code) == ("refusing", "WRONGPASS")


def wrapped(cause: BaseException) -> rx.ConnectionError:
    """A ConnectionError raised while handling ``cause``, as redis-py's connect does."""
    try:
        raise cause
    except BaseException:
        try:
            raise rx.ConnectionError(f"Error connecting to 127.0.0.1:6379 ({SECRET})") from None
        except rx.ConnectionError as error:
            error.__context__ = cause
            return error


@pytest.mark.parametrize(
    ("error", "state", "code", "reason"),
    [
        (
            wrapped(ConnectionRefusedError(111, "refused")),
            "unreachable",
            "REFUSED",
            "connection refused",
        ),
        (
            wrapped(socket.gaierror(-2, "Name or service not known")),
            "unreachable",
            "DNS",
            "does not resolve",
        ),
        (rx.TimeoutError("Timeout reading"), "unreachable", "TIMEOUT", "no answer within 0.5 s"),
        (TimeoutError(), "unreachable", "TIMEOUT", "no answer within 0.5 s"),
        (wrapped(ConnectionResetError(104, "reset")), "unreachable", "CONNECTION", "reset"),
        (rx.ConnectionError("Connection closed by server."), "unreachable", "CONNECTION", "closed"),
        (
            wrapped(ssl.SSLCertVerificationError(1, "certificate verify failed")),
            "refusing",
            "TLS",
            "TLS handshake",
        ),
    ],
)
def test_no_answer_is_unreachable_with_its_cause_and_no_message_text(
    error: BaseException, state: str, code: str, reason: str
) -> None:
    failure = classify(error, timeout_s=0.5)
    assert (failure.state, failure.code) == (state, code)
    assert reason in failure.reason
    assert SECRET not in failure.reason


def test_sentinels_that_refuse_the_password_or_know_no_primary() -> None:
    from redis.asyncio.sentinel import MasterNotFoundError

    refused = MasterNotFoundError("No master found for 'main' : <Redis> - auth:AuthenticationError")
    assert classify(refused, timeout_s=0.5).code == "SENTINEL_AUTH"
    none = classify(MasterNotFoundError("No master found for 'main'"), timeout_s=0.5)
    assert (none.state, none.code) == ("unreachable", "NO_PRIMARY")
