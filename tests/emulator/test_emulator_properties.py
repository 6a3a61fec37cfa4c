"""Property tests of the emulator's request parsing: whatever the body, the answer is
200, OpenAI's 400, its 404 for a model it does not serve, or 401 without a key; never
a 500.

Values are drawn from plausible pools (so many requests get past validation and reach
the job and the renderer) mixed with arbitrary JSON and text. Sizes and ``n`` stay
small so that each example renders in milliseconds.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from emulator_support import API_KEY
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.images import png

from imagegate_server.emulator import Emulator, EmulatorConfig
from imagegate_server.models import MODEL_RULES

SETTINGS = settings(
    # Modest by default so the suite stays fast; raise it for a deeper local search.
    max_examples=int(os.environ.get("IMAGEGATE_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    # One emulator serves every example of a test: that is the point, not a leak.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 20)
    | st.integers()
    | st.floats()
    | st.sampled_from([1.0, 2.0, 0.5, -1.0, 1e300])
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)

# A model the emulator serves beyond its table (judged like the newest GPT model).
EXTRA_MODEL = "gpt-image-x"
PLAUSIBLE: dict[str, list[Any]] = {
    "model": [*MODEL_RULES, EXTRA_MODEL, "gpt-image-9", "", 7],
    "prompt": ["a fox", "", "x" * 1001, "\u00e9\u4e2d\U0001f98a"],
    "n": [1, 2, 2.0, "2", 0, 11, 1.5, True],
    "size": ["256x256", "64x64", "96x160", "auto", "1x1", "256X256", "0x0"],
    "quality": ["auto", "low", "standard", "hd", "max", "xhigh"],
    "response_format": ["url", "b64_json", "png"],
    "style": ["vivid", "natural", "plain"],
    "background": ["transparent", "opaque", "auto"],
    "moderation": ["low", "auto"],
    "output_format": ["png", "jpeg", "webp", "gif", "svg", "bmp"],
    "output_compression": [0, 50, 50.0, 100, 101, "50"],
    "partial_images": [0, 1, 3, 1.0, 4],
    "stream": [True, False, "true"],
    "input_fidelity": ["low", "high"],
    "complexity": ["low", "high"],
    "frame_count": [2, 3.0, 16, 17],
    "frame_duration_ms": [0, 15, 100.0, 10**9, -1],
    "svg": [{"model": "m"}, {"reasoning": {"effort": "low"}}, "svg"],
    "user": ["u", 3],
}


GENERATIONS = [
    {"model": "dall-e-2", "prompt": "a fox", "size": "256x256"},
    {"model": "gpt-image-2", "prompt": "a fox", "size": "256x256"},
    {"prompt": "a fox", "size": "256x256", "output_format": "webp"},
    {"model": "gpt-image-2.5-flare", "prompt": "a fox", "size": "64x64", "output_format": "gif"},
    {"model": "gpt-image-2.5-sunburst", "prompt": "a fox", "output_format": "svg"},
]
EDITS = [
    {"model": "gpt-image-1", "prompt": "a fox", "size": "1024x1024"},
    {"model": "gpt-image-2", "prompt": "a fox"},
    {"model": "dall-e-2", "prompt": "a fox", "size": "256x256", "response_format": "b64_json"},
]
VARIATIONS = [{"model": "dall-e-2", "size": "256x256", "response_format": "b64_json"}, {}]


@st.composite
def parameters(
    draw: st.DrawFn, value: st.SearchStrategy[Any], bases: list[dict[str, Any]]
) -> dict[str, Any]:
    """A valid request mutated a little: some parameters dropped or given plausible or
    arbitrary values, now and then a stray one. Most examples then reach the job."""
    params = dict(draw(st.sampled_from(bases)))
    for name in draw(st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=3, unique=True)):
        how = draw(st.integers(0, 5))
        if how == 0:
            params.pop(name, None)
        elif how == 1:
            params[name] = draw(value)
        else:
            params[name] = draw(st.sampled_from(PLAUSIBLE[name]))
    if draw(st.integers(0, 9)) == 0:
        params.update(draw(st.dictionaries(st.text(max_size=8), value, max_size=2)))
    return params


FILE_CONTENTS = [
    png(64, 64),
    png(64, 64, (0, 0, 0, 0)),
    png(128, 64),
    png(64, 64, (0, 0, 0)),
    png(64, 64, (9, 9, 9), format="JPEG"),
    png(64, 64)[:60],  # header intact, body cut
    b"",
    b"GIF89a" + b"\x00" * 20,
]
random_files = st.lists(
    st.tuples(
        st.sampled_from(["image", "image[]", "image[]", "mask", "markup"]) | st.text(max_size=6),
        st.sampled_from(FILE_CONTENTS) | st.binary(max_size=64),
        st.sampled_from(["image/png", "image/jpeg", "application/octet-stream"]),
    ),
    max_size=3,
)
_IMAGE = ("image", png(64, 64, (0, 0, 0, 0)), "image/png")
files = (
    random_files
    | st.sampled_from([[_IMAGE], [_IMAGE, ("mask", png(64, 64, (0, 0, 0, 0)), "image/png")]])
    | st.sampled_from(
        [
            [_IMAGE],
            [_IMAGE, ("mask", png(64, 64, (0, 0, 0, 0)), "image/png")],
            [
                ("image[]", png(64, 64), "image/png"),
                ("image[]", png(64, 64, (9, 9, 9), format="JPEG"), "image/jpeg"),
            ],
        ]
    )
)
authorisation = st.sampled_from([True, True, True, False])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    config = EmulatorConfig(api_key=API_KEY, extra_models=frozenset({EXTRA_MODEL}))
    async with (
        Emulator(config) as emulator,
        httpx.AsyncClient(base_url=emulator.base_url, timeout=60) as client,
    ):
        yield client


def _headers(authorised: bool) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"} if authorised else {}


def assert_openai_answer(response: httpx.Response, authorised: bool, model: Any) -> None:
    """``model``: the model the request named (None: it named none)."""
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics shows the mix
    if not authorised:
        assert response.status_code == 401, response.text
        return
    served = model is None or not isinstance(model, str) or model in {*MODEL_RULES, EXTRA_MODEL}
    # A body that cannot be read is a 400 whatever model it names; one that names a
    # model the emulator does not serve never makes an image.
    assert response.status_code in ((200, 400) if served else (400, 404)), response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
    if response.status_code == 404:
        assert error["code"] == "model_not_found" and f"`{model[:256]}`" in error["message"]


async def post_json(
    http: httpx.AsyncClient, path: str, payload: Any, authorised: bool
) -> httpx.Response:
    # json.dumps, not httpx's encoder: Python's JSON (and so the emulator's) reads
    # NaN and Infinity, and a client may send them.
    return await http.post(
        path,
        content=json.dumps(payload).encode(),
        headers={**_headers(authorised), "content-type": "application/json"},
    )


def _model(payload: Any) -> Any:
    return payload.get("model") if isinstance(payload, dict) else None


def _form(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Form fields as a client would send them: strings (JSON for anything else)."""
    return [
        (name, value if isinstance(value, str) else json.dumps(value))
        for name, value in params.items()
    ]


@SETTINGS
@given(
    body=st.one_of(
        parameters(json_values, GENERATIONS),
        parameters(json_values, GENERATIONS),
        json_values.map(lambda v: {"raw": v}),
    ),
    authorised=authorisation,
)
async def test_generation_bodies(
    http: httpx.AsyncClient, body: dict[str, Any], authorised: bool
) -> None:
    payload = body["raw"] if set(body) == {"raw"} else body
    response = await post_json(http, "/images/generations", payload, authorised)
    assert_openai_answer(response, authorised, _model(payload))


@SETTINGS
@given(
    request=st.tuples(st.just("/images/edits"), parameters(st.text(max_size=12), EDITS))
    | st.tuples(st.just("/images/variations"), parameters(st.text(max_size=12), VARIATIONS)),
    uploads=files,
    authorised=authorisation,
)
async def test_multipart_forms(
    http: httpx.AsyncClient,
    request: tuple[str, dict[str, Any]],
    uploads: list[tuple[str, bytes, str]],
    authorised: bool,
) -> None:
    path, params = request
    multipart = [(name, ("f.png", data, kind)) for name, data, kind in uploads]
    response = await http.post(
        path, data=dict(_form(params)), files=multipart or None, headers=_headers(authorised)
    )
    # A form carries text: whatever the model was, it arrives as its form value.
    model = dict(_form(params)).get("model")
    assert_openai_answer(response, authorised, model)


def data_url_ref(data: bytes) -> dict[str, str]:
    return {"image_url": "data:image/png;base64," + base64.b64encode(data).decode()}


@SETTINGS
@given(
    params=parameters(json_values, EDITS),
    images=st.lists(st.sampled_from(FILE_CONTENTS).map(data_url_ref), min_size=1, max_size=3)
    | json_values,
    mask=st.none() | st.none() | st.sampled_from(FILE_CONTENTS).map(data_url_ref) | json_values,
)
async def test_json_edit_bodies(
    http: httpx.AsyncClient, params: dict[str, Any], images: Any, mask: Any
) -> None:
    params["images"] = images
    if mask is not None:
        params["mask"] = mask
    response = await post_json(http, "/images/edits", params, True)
    assert_openai_answer(response, True, _model(params))


async def test_lone_surrogates_in_json_are_a_400(http: httpx.AsyncClient) -> None:
    body = b'{"model": "gpt-image-1", "prompt": "\\ud800 fox"}'
    response = await http.post(
        "/images/generations",
        content=body,
        headers={**_headers(True), "content-type": "application/json"},
    )
    assert response.status_code == 400
    paired = await http.post(
        "/images/generations",
        content=b'{"model": "gpt-image-1", "prompt": "\\ud83e\\udd8a fox", "size": "1024x1024"}',
        headers={**_headers(True), "content-type": "application/json"},
    )
    assert paired.status_code == 200  # a valid surrogate pair is just an emoji
