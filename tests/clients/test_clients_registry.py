"""Token verification: one answer and the same work for every kind of wrong token."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagegate_server.clients import ClientRegistry, load_registry, tokens


def token_table(new: tokens.NewToken, *, expires: datetime | None = None) -> str:
    line = f'{{id = "{new.token_id}", sha256 = "{new.sha256}", created = 2026-12-01T00:00:00Z'
    if expires is not None:
        line += f", expires = {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    return line + "}"


@pytest.fixture
def two_clients(tmp_path: Path) -> tuple[ClientRegistry, list[tokens.NewToken]]:
    issued = [tokens.generate() for _ in range(3)]
    path = tmp_path / "clients.toml"
    path.write_text(
        f"""
[clients.team-a]
tokens = [{token_table(issued[0])}, {token_table(issued[1])}]
identities = ["spiffe://example.org/ns/a/sa/renderer", "Renderer.Team-A.svc"]

[clients.team-b]
tokens = [{token_table(issued[2])}]
"""
    )
    return load_registry(path), issued


def test_every_token_of_a_client_verifies_as_that_client(
    two_clients: tuple[ClientRegistry, list[tokens.NewToken]],
) -> None:
    registry, issued = two_clients
    a, b = registry.clients["team-a"], registry.clients["team-b"]
    assert registry.by_token(issued[0].token) is a
    assert registry.by_token(issued[1].token) is a  # rotation: both work
    assert registry.by_token(issued[2].token) is b


def wrong_tokens(issued: tokens.NewToken) -> dict[str, str]:
    """One token per way of being wrong, each close to the real one."""
    real = issued.token
    body, check = real[:-6], real[-6:]
    # Another secret under the right id, with a valid checksum: only the hash differs.
    other_secret = tokens.generate()
    forged_body = f"igk_{issued.token_id}_{other_secret.token[-49:-6]}"
    unknown = tokens.generate()
    return {
        "wrong secret": forged_body + tokens.checksum(forged_body),
        "unknown id": unknown.token,
        "bad checksum": body + ("0" if check[0] != "0" else "1") + check[1:],
        "garbage": "igk_not a token at all",
        "empty": "",
        "other scheme": "sk-proj-" + "x" * 40,
        "truncated": real[:-1],
        "with whitespace": real + " ",
    }


def test_wrong_tokens_of_every_kind_all_return_none(
    two_clients: tuple[ClientRegistry, list[tokens.NewToken]],
) -> None:
    registry, issued = two_clients
    for kind, token in wrong_tokens(issued[0]).items():
        assert registry.by_token(token) is None, kind


def test_expired_tokens_stop_verifying(tmp_path: Path) -> None:
    new = tokens.generate()
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    path = tmp_path / "clients.toml"
    path.write_text(f"[clients.a]\ntokens = [{token_table(new, expires=expires)}]\n")
    registry = load_registry(path)
    assert registry.by_token(new.token, now=expires.timestamp() - 1) is not None
    assert registry.by_token(new.token, now=expires.timestamp()) is None
    past = datetime.now(UTC) - timedelta(days=1)
    path.write_text(f"[clients.a]\ntokens = [{token_table(new, expires=past)}]\n")
    assert load_registry(path).by_token(new.token) is None


def test_identities_map_to_their_client(
    two_clients: tuple[ClientRegistry, list[tokens.NewToken]],
) -> None:
    registry, _ = two_clients
    a = registry.clients["team-a"]
    assert registry.by_identity("spiffe://example.org/ns/a/sa/renderer") is a
    assert registry.by_identity("renderer.team-a.svc") is a
    assert registry.by_identity("RENDERER.TEAM-A.SVC") is a
    assert registry.by_identity("spiffe://example.org/ns/a/sa/RENDERER") is None
    assert registry.by_identity("spiffe://example.org/ns/b/sa/renderer") is None
    assert registry.by_identity("not an identity") is None
    assert registry.by_identity("") is None


def test_an_empty_registry_knows_nobody() -> None:
    registry = ClientRegistry.empty()
    assert len(registry) == 0
    assert registry.by_token(tokens.generate().token) is None
    assert registry.by_identity("x.example") is None


def test_timing_of_wrong_tokens_is_printed_not_asserted(
    two_clients: tuple[ClientRegistry, list[tokens.NewToken]],
) -> None:
    """Prints median ns per lookup for each kind (run with -s). Timing is never
    asserted: on two shared cores it measures the neighbours as much as the code."""
    registry, issued = two_clients
    cases = {"right token": issued[0].token, **wrong_tokens(issued[0])}
    rounds = 2000
    medians = {}
    for kind, token in cases.items():
        samples = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            registry.by_token(token)
            samples.append(time.perf_counter_ns() - start)
        medians[kind] = statistics.median(samples)
    base = medians["right token"]
    for kind, median in medians.items():
        print(f"by_token {kind:16s} median {median:7.0f} ns  ({median / base:.2f}x right token)")
