"""Token format: what `imagegate clients add` prints and what the gateway accepts."""

from __future__ import annotations

import re
import zlib

import pytest

from imagegate_server.clients import tokens

TOKEN_SHAPE = re.compile(r"igk_([0-9A-Za-z]{8})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})")


def test_generated_tokens_have_the_documented_shape_and_a_valid_crc32() -> None:
    new = tokens.generate()
    match = TOKEN_SHAPE.fullmatch(new.token)
    assert match is not None, new.token
    token_id, secret, check = match.groups()
    assert new.token_id == token_id
    # A secret scanner can validate offline: CRC32 of everything before it, base62.
    body = f"igk_{token_id}_{secret}"
    crc = zlib.crc32(body.encode())
    decoded = 0
    for char in check:
        decoded = decoded * 62 + tokens.ALPHABET.index(char)
    assert decoded == crc
    # The file stores the SHA-256 of the whole token, nothing else derived from it.
    assert new.sha256 == tokens.digest(new.token).hex()
    assert len(new.sha256) == 64


def test_secrets_carry_256_bits_and_do_not_repeat() -> None:
    generated = [tokens.generate() for _ in range(200)]
    assert len({t.token for t in generated}) == 200
    assert len({t.token_id for t in generated}) == 200
    # 43 base62 digits hold 2**256 values (the secret is not truncated).
    assert 62**43 > 2**256 > 62**42
    secrets_as_ints = []
    for new in generated:
        match = TOKEN_SHAPE.fullmatch(new.token)
        assert match is not None
        value = 0
        for char in match[2]:
            value = value * 62 + tokens.ALPHABET.index(char)
        secrets_as_ints.append(value)
    assert all(v < 2**256 for v in secrets_as_ints)
    # Over 200 draws, some secret uses the top bits (chance of failing ~ 2**-200).
    assert max(secrets_as_ints).bit_length() >= 250


def test_generate_avoids_taken_ids() -> None:
    first = tokens.generate()
    taken = {first.token_id}
    for _ in range(50):
        assert tokens.generate(taken).token_id not in taken


def test_parse_accepts_a_generated_token_and_flags_a_bad_checksum() -> None:
    new = tokens.generate()
    parsed = tokens.parse(new.token)
    assert parsed == tokens.ParsedToken(token_id=new.token_id, well_formed=True)
    last = new.token[-1]
    tampered = new.token[:-1] + ("A" if last != "A" else "B")
    assert tokens.parse(tampered) == tokens.ParsedToken(new.token_id, well_formed=False)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "igk_",
        "sk-proj-abcdef",
        "igk_abc_" + "a" * 49,  # id too short
        "igk_abcdefgh_" + "a" * 48,  # secret+checksum one short
        "igk_abcdefgh_" + "a" * 50,
        "igk_abcdefgh-" + "a" * 49,
        "IGK_abcdefgh_" + "a" * 49,
        "igk_abcdefgh_" + "a" * 48 + "!",
        " igk_abcdefgh_" + "a" * 49,
    ],
)
def test_parse_rejects_malformed_tokens(token: str) -> None:
    assert tokens.parse(token) == tokens.ParsedToken(token_id="", well_formed=False)


def test_base62_pads_and_refuses_overflow() -> None:
    assert tokens.base62(0, 3) == "000"
    assert tokens.base62(61, 2) == "0z"
    assert tokens.base62(62, 2) == "10"
    with pytest.raises(ValueError):
        tokens.base62(62**2, 2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bearer igk_x", "igk_x"),
        ("bearer   igk_x  ", "igk_x"),
        ("BEARER igk_x", "igk_x"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("igk_x", None),
        ("", None),
    ],
)
def test_from_authorization(value: str, expected: str | None) -> None:
    assert tokens.from_authorization(value) == expected
