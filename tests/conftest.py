"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
# The OpenAI spec is not copied into the project: it is read from the shared
# reference folder beside the checkout (or from IMAGEGATE_OPENAI_SPEC).
SPEC_PATH = Path(
    os.environ.get(
        "IMAGEGATE_OPENAI_SPEC",
        REPO_ROOT.parent / "shared" / "reference" / "openai-openapi.yaml",
    )
)


_DATA_DIRS = itertools.count()
# The result store's link port: a free one for every gateway the tests start, in this
# process or as subprocesses, whatever a fixture's scope (the default is fixed).
os.environ["IMAGEGATE_STORE_HTTP_PORT"] = "0"


def _new_data_directory(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data directory under the session's temporary one that nothing else uses
    (created only when a gateway opens it)."""
    return str(tmp_path_factory.getbasetemp() / "data" / str(next(_DATA_DIRS)))


@pytest.fixture(autouse=True)
def _own_data_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every test's gateways keep their local state (the limits and jobs database,
    the result store) in a data directory of that test's own, never in the checkout's
    ``data/`` and never shared with another test."""
    monkeypatch.setenv("IMAGEGATE_DATA_DIR", _new_data_directory(tmp_path_factory))
    yield


@pytest.fixture(scope="module", autouse=True)
def _module_data_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for the gateways of a module's module-scoped fixtures, which start
    before any test's own directory is set: one directory per module, so that no
    limit a module's clients used up is still counted in the next module (or run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMAGEGATE_DATA_DIR", _new_data_directory(tmp_path_factory))
        yield


_CHECKOUT_DATA = REPO_ROOT / "data"
_CHECKOUT_DATA_EXISTED = _CHECKOUT_DATA.exists()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A run that made the checkout's ``data/`` (the default data directory) fails:
    some gateway of a test kept its state there, shared with the next run. (A checkout
    that has one already, from a developer's own ``serve``, is not checked.)"""
    if not _CHECKOUT_DATA_EXISTED and _CHECKOUT_DATA.exists():
        print(f"\nerror: the tests wrote into {_CHECKOUT_DATA}: a gateway ignored the "
              "session's IMAGEGATE_DATA_DIR", file=sys.stderr)  # fmt: skip
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def openai_spec() -> dict[str, Any]:
    """The OpenAI OpenAPI document; skips (saying why) when it is not beside the repo."""
    if not SPEC_PATH.is_file():
        pytest.skip(
            f"OpenAI spec not found at {SPEC_PATH}: these tests compare against "
            "../shared/reference/openai-openapi.yaml (or $IMAGEGATE_OPENAI_SPEC), "
            "which this checkout does not have beside it"
        )
    with SPEC_PATH.open("rb") as handle:
        spec: dict[str, Any] = yaml.load(
            handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    return spec


if os.environ.get("IMAGEGATE_TEST_EVENT_LOOP") == "uvloop":
    # CI runs the gateway's tests on uvloop too, since serve runs on it when installed.
    import uvloop

    def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
        return {"uvloop": uvloop.new_event_loop}
