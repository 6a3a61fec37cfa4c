"""Sizes and fault names written with digits other than ASCII are 400s, not crashes."""

from __future__ import annotations

import httpx
import pytest
from emulator_support import API_KEY

from imagegate_server.emulator import Emulator


@pytest.mark.parametrize(
    "size", ["²x²", "①⓪②④x1024", "\u0661\u0660\u0662\u0664x\u0661\u0660\u0662\u0664"]
)
async def test_a_size_with_non_ascii_digits_is_an_invalid_value(
    emulator: Emulator, size: str
) -> None:
    async with httpx.AsyncClient(
        base_url=emulator.base_url, headers={"authorization": f"Bearer {API_KEY}"}
    ) as http:
        response = await http.post(
            "/images/generations", json={"prompt": "p", "model": "gpt-image-2", "size": size}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("size", "invalid_value")


@pytest.mark.parametrize("fault", ["\u00b2", "\uff15\uff10\uff10"])
async def test_a_fault_named_with_non_ascii_digits_is_a_syntax_error(
    emulator: Emulator, fault: str
) -> None:
    async with httpx.AsyncClient(
        base_url=emulator.base_url, headers={"authorization": f"Bearer {API_KEY}"}
    ) as http:
        response = await http.post(
            "/images/generations",
            json={"prompt": "p", "model": "gpt-image-2"},
            headers={"x-emulator-fault": fault.encode()},  # UTF-8 on the wire
        )
    assert response.status_code == 400
    assert "fault" in response.json()["error"]["message"]
