"""Fixtures for the emulator tests: a real emulator on 127.0.0.1:0, official clients,
and validators for the spec's response schemas."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml  # type: ignore[import-untyped]
from emulator_support import API_KEY, SchemaCheck
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from imagegate_server.emulator import Emulator, EmulatorConfig

SPEC_PATH = Path(
    os.environ.get(
        "IMAGEGATE_OPENAI_SPEC",
        Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "openai-openapi.yaml",
    )
)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(api_key=API_KEY)) as running:
        yield running


@pytest.fixture
def client(emulator: Emulator) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=API_KEY, base_url=emulator.base_url, max_retries=0, timeout=30
    )


def _relax_lagging_enums(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's response enums lag the API: the SDK (3.57.0) knows WxH sizes, quality
    xhigh/max and output formats gif/svg. Widen exactly those properties, nothing else."""
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    names = [
        "ImagesResponse",
        "ImageGenCompletedEvent",
        "ImageGenPartialImageEvent",
        "ImageEditCompletedEvent",
        "ImageEditPartialImageEvent",
    ]
    for name in names:
        props = schemas[name]["properties"]
        props["size"] = {"type": "string", "pattern": r"^(auto|[0-9]+x[0-9]+)$"}
        props["quality"]["enum"] = [*props["quality"]["enum"], "xhigh", "max"]
        props["output_format"]["enum"] = [*props["output_format"]["enum"], "gif", "svg"]
    return spec


class SchemaCheckSkipped(UserWarning):
    """A response was not checked against the spec because the spec is absent."""


_skipped_schema_checks: list[str] = []


@pytest.fixture(scope="session")
def openapi_spec() -> dict[str, Any] | None:
    """The OpenAI spec, or None when ../shared/reference is not checked out."""
    if not SPEC_PATH.exists():
        return None
    with SPEC_PATH.open() as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


@pytest.fixture(scope="session")
def check_schema(openapi_spec: dict[str, Any] | None) -> SchemaCheck:
    """``check_schema("ImagesResponse", payload)`` raises unless payload matches.

    Without the spec only the schema assertion is skipped, with a warning: the tests
    still make their behavioural assertions (skipping them would hide regressions on
    any machine without ../shared)."""
    if openapi_spec is None:

        def skip(name: str, payload: Any) -> None:
            del payload
            _skipped_schema_checks.append(name)
            warnings.warn(
                SchemaCheckSkipped(
                    f"schema check of {name} skipped: OpenAI spec absent at {SPEC_PATH} "
                    "(check out ../shared/reference/openai-openapi.yaml or set "
                    "IMAGEGATE_OPENAI_SPEC)"
                ),
                stacklevel=2,
            )

        return skip

    spec = _relax_lagging_enums(openapi_spec)
    registry: Registry[Any] = Registry().with_resource(
        "urn:openai", Resource.from_contents(spec, default_specification=DRAFT202012)
    )

    def check(name: str, payload: Any) -> None:
        schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
        Draft202012Validator(schema, registry=registry).validate(payload)

    return check


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_schema_checks:
        terminalreporter.write_sep(
            "=",
            f"{len(_skipped_schema_checks)} response schema checks SKIPPED: "
            f"OpenAI spec absent at {SPEC_PATH}",
            yellow=True,
        )
