"""Command line -> parameter messages, for every field of the three parameter messages."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from client_support import parse
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from imagegate.v1 import params_pb2
from support.images import write_png

from imagegate_server.client.option_values import enum_choices, option_name
from imagegate_server.client.options import ParameterOptions, ValueOption
from imagegate_server.client.request import PreparedCall, prepare


def build(args: argparse.Namespace) -> tuple[Message, PreparedCall]:
    """The one request builder of the three commands: (parameters, the prepared call)."""
    prepared = prepare(args)
    return prepared.parameters, prepared


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {name: write_png(tmp_path / f"{name}.png") for name in ("a", "b", "mask", "markup")}


def _base(command_name: str, files: dict[str, Path]) -> list[str]:
    """The smallest valid command line of each command."""
    if command_name == "generate":
        return ["generate", "a prompt", "-o", "out.png"]
    if command_name == "edit":
        return ["edit", str(files["a"]), "a prompt", "-o", "out.png"]
    return ["vary", str(files["a"]), "-o", "out.png"]


COMMANDS: list[tuple[str, Descriptor]] = [
    ("generate", params_pb2.GenerationParameters.DESCRIPTOR),
    ("edit", params_pb2.EditParameters.DESCRIPTOR),
    ("vary", params_pb2.VariationParameters.DESCRIPTOR),
]


def _sample(option: ValueOption) -> tuple[str, Any]:
    """A command-line value for the option and the field value it must produce."""
    field = option.field
    if field.enum_type is not None:
        # The last value, so a table that only knew the first few would fail.
        name, number = list(enum_choices(field.enum_type).items())[-1]
        return name, number
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"value-of-{field.name}", f"value-of-{field.name}"
    return "7", 7


def _get(message: Message, path: tuple[str, ...]) -> Any:
    for name in path:
        message = getattr(message, name)
    return message


def _has(message: Message, path: tuple[str, ...]) -> bool:
    for name in path[:-1]:
        if not message.HasField(name):
            return False
        message = getattr(message, name)
    field = message.DESCRIPTOR.fields_by_name[path[-1]]
    if field.has_presence:
        return message.HasField(path[-1])
    return bool(getattr(message, path[-1]))


@pytest.mark.parametrize(("name", "descriptor"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_value_field_has_an_option_named_after_it(
    name: str, descriptor: Descriptor, files: dict[str, Path]
) -> None:
    options = ParameterOptions(descriptor)
    assert options.values, "descriptor walk found no value fields"
    for option in options.values:
        text, expected = _sample(option)
        args = parse([*_base(name, files), option.flag, text])
        params, _ = build(args)
        assert _has(params, option.path), option.flag
        assert _get(params, option.path) == expected, option.flag


@pytest.mark.parametrize(("name", "descriptor"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_field_is_reachable_from_the_command_line(
    name: str, descriptor: Descriptor, files: dict[str, Path]
) -> None:
    """Each top-level field is either a value option or one of the fixed spellings."""
    options = ParameterOptions(descriptor)
    by_value = {option.path[0] for option in options.values}
    special = {
        "prompt",
        "images",
        "mask",
        "markup",
        "image",
        "image_references",
        "mask_reference",
        "extra_parameters",
    }
    for field in descriptor.fields:
        assert field.name in by_value or field.name in special, f"{field.name} has no option"


@pytest.mark.parametrize(("name", "descriptor"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_options_not_given_leave_fields_unset(
    name: str, descriptor: Descriptor, files: dict[str, Path]
) -> None:
    params, _ = build(parse(_base(name, files)))
    for field in descriptor.fields:
        if field.name in ("prompt", "images", "image"):
            continue  # the positional arguments
        if field.is_repeated:
            assert len(getattr(params, field.name)) == 0, field.name
        elif field.has_presence:
            assert not params.HasField(field.name), field.name
        else:
            assert getattr(params, field.name) == 0, field.name  # enum UNSPECIFIED


def test_zero_is_sent_when_given() -> None:
    """Presence: --partial-images 0 must reach the server as 0, not as unset."""
    params, _ = build(parse(["generate", "p", "-o", "x.png", "--partial-images", "0", "--n", "0"]))
    assert params.HasField("partial_images") and params.partial_images == 0
    assert params.HasField("n") and params.n == 0


def test_enum_options_take_openai_spelling() -> None:
    params, _ = build(
        parse(
            [
                "generate",
                "p",
                "-o",
                "x.png",
                "--quality",
                "high",
                "--output-format",
                "webp",
                "--response-format",
                "b64_json",
                "--background",
                "transparent",
                "--svg-reasoning-effort",
                "xhigh",
                "--svg-model",
                "gpt-5",
                "--output-compression",
                "80",
                "--model",
                "gpt-image-2",
                "-n",
                "3",
                "--size",
                "1536x1024",
            ]
        )
    )
    assert params.quality == params_pb2.QUALITY_HIGH
    assert params.output_format == params_pb2.OUTPUT_FORMAT_WEBP
    assert params.response_format == params_pb2.RESPONSE_FORMAT_B64_JSON
    assert params.background == params_pb2.BACKGROUND_TRANSPARENT
    assert params.svg.reasoning.effort == params_pb2.SVG_REASONING_EFFORT_XHIGH
    assert params.svg.model == "gpt-5"
    assert params.output_compression == 80
    assert (params.model, params.n, params.size) == ("gpt-image-2", 3, "1536x1024")


def test_option_names_use_dashes() -> None:
    assert option_name(("output_compression",)) == "--output-compression"
    assert option_name(("svg", "reasoning", "effort")) == "--svg-reasoning-effort"
    flags = {o.flag for o in ParameterOptions(params_pb2.EditParameters.DESCRIPTOR).values}
    for expected in (
        "--output-compression",
        "--partial-images",
        "--input-fidelity",
        "--safety-identifier",
        "--frame-count",
        "--frame-duration-ms",
        "--svg-model",
        "--svg-reasoning-effort",
    ):
        assert expected in flags


def test_extra_parameters_keep_json_types() -> None:
    params, _ = build(
        parse(
            [
                "generate",
                "p",
                "-o",
                "x.png",
                "--extra",
                "seed=42",
                "--extra",
                'tone="warm"',
                "--extra",
                'layers={"a": [1, true, null]}',
            ]
        )
    )
    extra = params.extra_parameters
    assert extra["seed"].number_value == 42
    assert extra["tone"].string_value == "warm"
    layers = extra["layers"].struct_value.fields["a"].list_value.values
    assert [v.WhichOneof("kind") for v in layers] == ["number_value", "bool_value", "null_value"]


def test_edit_uploads_and_references(files: dict[str, Path]) -> None:
    # Options between the images and the prompt, as in the documented usage line.
    args = parse(
        [
            "edit",
            str(files["a"]),
            str(files["b"]),
            "--mask",
            str(files["mask"]),
            "make it blue",
            "-o",
            "x.png",
            "--input-fidelity",
            "high",
        ]
    )
    params, job = build(args)
    assert params.prompt == "make it blue"
    assert [i.filename for i in params.images] == ["a.png", "b.png"]
    assert all(i.content_type == "image/png" for i in params.images)
    assert params.images[0].size_bytes == files["a"].stat().st_size
    assert params.mask.filename == "mask.png"
    assert not params.HasField("markup")
    assert params.input_fidelity == params_pb2.INPUT_FIDELITY_HIGH
    assert job.uploads.total == sum(files[k].stat().st_size for k in ("a", "b", "mask"))


def test_edit_markup_and_references_in_order(files: dict[str, Path]) -> None:
    args = parse(
        [
            "edit",
            "--image-url",
            "https://example.com/1.png",
            "--file-id",
            "file-2",
            "--image-url",
            "data:image/png;base64,AAAA",
            "--mask-file-id",
            "file-mask",
            "p",
            "-o",
            "x.png",
        ]
    )
    params, _ = build(args)
    refs = [
        (r.WhichOneof("source"), getattr(r, r.WhichOneof("source")))
        for r in params.image_references
    ]
    assert refs == [
        ("image_url", "https://example.com/1.png"),
        ("file_id", "file-2"),
        ("image_url", "data:image/png;base64,AAAA"),
    ]
    assert params.mask_reference.file_id == "file-mask"
    assert len(params.images) == 0

    params, _ = build(
        parse(["edit", str(files["a"]), "--markup", str(files["markup"]), "p", "-o", "x.png"])
    )
    assert params.markup.filename == "markup.png"
    assert not params.HasField("mask_reference")


def test_vary_declares_its_image(files: dict[str, Path]) -> None:
    params, _ = build(parse(["vary", str(files["a"]), "-o", "x.png", "-n", "2"]))
    assert params.image.filename == "a.png"
    assert params.image.content_type == "image/png"
    assert params.n == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "p", "-o", "x.png", "--n", "-1"],
        ["generate", "p", "-o", "x.png", "--n", "many"],
        ["generate", "p", "-o", "x.png", "--quality", "ultra"],
        ["generate", "p", "-o", "x.png", "--extra", "seed"],
        ["generate", "p", "-o", "x.png", "--extra", "tone=warm"],
        ["generate", "p", "-o", "x.png", "--timeout", "0"],
        ["generate", "p", "-o", "x.png", "--output-compression", str(2**32)],
        ["vary", "-o", "x.png"],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_usage_errors_found_after_parsing_exit_2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from imagegate_server.cli import main

    cases = [
        (["generate", "p"], "-o/--output"),  # bytes need somewhere to go
        (["edit", "p", "-o", "x.png"], "at least one IMAGE"),
        (["generate", "p", "-o", "x.png", "--extra", "a=1", "--extra", "a=2"], "twice"),
        (
            ["edit", str(files["a"]), "p", "-o", "x", "--mask-url", "u", "--mask-file-id", "f"],
            "exclusive",
        ),
    ]
    for argv, needle in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
        assert needle in capsys.readouterr().err, argv


def test_missing_input_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from imagegate_server.cli import main

    code = main(["vary", str(tmp_path / "nope.png"), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("imagegate: cannot read ") and "No such file" in err


def test_edit_help_says_what_a_mask_means(capsys: pytest.CaptureFixture[str]) -> None:
    # OpenAI's rule, which users guess the wrong way round: transparent = change it.
    with pytest.raises(SystemExit) as exit_info:
        parse(["edit", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal
    assert (
        "--mask MASK PNG, the size of the first IMAGE, whose fully transparent pixels "
        "(alpha 0) mark the areas to change" in text
    )
