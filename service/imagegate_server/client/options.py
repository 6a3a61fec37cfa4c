"""Command-line options <-> fields of the parameter messages.

Options are derived from the message descriptors, so every scalar, enum and nested
settings field of GenerationParameters / EditParameters / VariationParameters gets
an option named after it (``output_compression`` -> ``--output-compression``,
``svg.reasoning.effort`` -> ``--svg-reasoning-effort``) without a hand-kept list
that could fall behind the contract. Enum options take OpenAI's lowercase values
(``--quality high``). Fields that are not plain values have fixed spellings:
uploads are positional files or ``--mask``/``--markup`` (see :mod:`.parsers`),
references are ``--image-url``/``--file-id``/``--mask-url``/``--mask-file-id``
and the forward-compatible map is ``--extra KEY=JSON``.

Presence is preserved: an option the user did not give leaves its field unset
(argparse default None), so OpenAI applies its own default for it. What an option's
text becomes (types, enum spellings, ``--extra``) is in :mod:`.option_values`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from imagegate.v1 import params_pb2

from imagegate_server.client.option_values import (
    enum_choices,
    is_integer,
    option_name,
    parse_extra,
    value_type,
)

# Fields given as positional arguments or uploads by the commands themselves.
POSITIONAL_FIELDS = frozenset({"prompt"})
FILE_INFO = params_pb2.FileInfo.DESCRIPTOR.full_name
IMAGE_REFERENCE = params_pb2.ImageReference.DESCRIPTOR.full_name

# One line of help per parameter; the proto comments are the full documentation
# (generated descriptors carry no comments, hence this short table).
_HELP: dict[str, str] = {
    "model": "model name, e.g. gpt-image-2 or dall-e-3 (default: the gateway's)",
    "n": "number of images, 1-10",
    "size": "WIDTHxHEIGHT or auto",
    "quality": "rendering quality",
    "response_format": "DALL-E models: return a URL or the bytes",
    "style": "dall-e-3 only",
    "background": "GPT image models only",
    "moderation": "GPT image models only",
    "output_format": "encoding of the returned images (GPT image models)",
    "output_compression": "0-100 %% for jpeg and webp output",
    "partial_images": "number of partial images to stream first, 0-3",
    "user": "end-user identifier (deprecated by OpenAI: use --safety-identifier)",
    "safety_identifier": "stable hashed end-user identifier for safety monitoring",
    "complexity": "planning effort, independent of quality",
    "frame_count": "GIF frames, 2-16 (gif output only)",
    "frame_duration_ms": "delay per GIF frame in ms (gif output only)",
    "input_fidelity": "how closely the edit follows the input images",
    "svg.model": "model that authors SVG output (svg output only)",
    "svg.reasoning.effort": "reasoning effort of the SVG author",
    "delivery": "inline bytes (default; with --detach: stored) or stored: links into the "
    "gateway's result store (any size fits the call; -o downloads them all the same)",
}


class UsageError(Exception):
    """A command line that parses but cannot make a valid request (exit code 2)."""


def _is_map(field: FieldDescriptor) -> bool:
    message = field.message_type
    return message is not None and message.GetOptions().map_entry


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


class _AppendReference(argparse.Action):
    """Collects --image-url/--file-id into one list, keeping their relative order."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items: list[tuple[str, str]] = list(getattr(namespace, self.dest, None) or [])
        items.append((str(self.const), str(values)))
        setattr(namespace, self.dest, items)


@dataclass(frozen=True)
class ValueOption:
    """A scalar or enum field (possibly nested) and the option that sets it."""

    path: tuple[str, ...]
    field: FieldDescriptor
    dest: str

    @property
    def flag(self) -> str:
        return option_name(self.path)


class ParameterOptions:
    """The options of one parameters message, added to a parser, and applied back.

    Use :func:`options_for`: the parser and the request builder must see the same
    walk of the descriptor, and walking it once is enough.
    """

    def __init__(self, descriptor: Descriptor) -> None:
        self.descriptor = descriptor
        self.values: list[ValueOption] = []
        self.reference_fields: list[FieldDescriptor] = []
        self.map_fields: list[FieldDescriptor] = []
        self.other_fields: list[FieldDescriptor] = []
        """Fields this module leaves to the command (prompt, uploads)."""
        self._collect(descriptor, ())

    def _collect(self, descriptor: Descriptor, prefix: tuple[str, ...]) -> None:
        for field in descriptor.fields:
            path = (*prefix, field.name)
            message = field.message_type
            if not prefix and field.name in POSITIONAL_FIELDS:
                self.other_fields.append(field)
            elif _is_map(field) and not prefix:
                self.map_fields.append(field)
            elif message is not None and message.full_name == FILE_INFO and not prefix:
                self.other_fields.append(field)
            elif message is not None and message.full_name == IMAGE_REFERENCE and not prefix:
                self.reference_fields.append(field)
            elif message is not None and not _is_repeated(field) and not _is_map(field):
                # Settings groups such as SvgOptions flatten into prefixed options.
                self._collect(message, path)
            elif field.enum_type is not None or value_type(field) is not None:
                self.values.append(ValueOption(path, field, "param__" + "__".join(path)))
            else:
                self.other_fields.append(field)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(
            "parameters",
            "OpenAI's parameters, named as in its API; unset ones are omitted upstream",
        )
        for option in self.values:
            field = option.field
            key = ".".join(option.path)
            help_text = _HELP.get(key, f"OpenAI parameter {key}")
            flags = [option.flag]
            if option.path == ("n",):
                flags.insert(0, "-n")
            action = "append" if _is_repeated(field) else "store"
            if field.enum_type is not None:
                choices = list(enum_choices(field.enum_type))
                group.add_argument(
                    *flags,
                    dest=option.dest,
                    choices=choices,
                    action=action,
                    metavar="{" + ",".join(choices) + "}",
                    help=help_text,
                )
            else:
                parse_value = value_type(field)
                assert parse_value is not None  # _collect only keeps fields with a type
                group.add_argument(
                    *flags,
                    dest=option.dest,
                    type=parse_value,
                    action=action,
                    metavar="N" if is_integer(field) else field.name.upper(),
                    help=help_text,
                )
        for field in self.reference_fields:
            self._add_reference(group, field)
        if self.map_fields:
            group.add_argument(
                "--extra",
                dest="param__extra",
                metavar="KEY=JSON",
                type=parse_extra,
                action="append",
                help="a parameter newer than this contract, forwarded if the gateway "
                "allows it; repeatable (e.g. --extra 'seed=42')",
            )

    @staticmethod
    def _add_reference(group: argparse._ArgumentGroup, field: FieldDescriptor) -> None:
        if _is_repeated(field):
            # image_references: repeatable, URLs and file ids mixed in order.
            for kind, flag, what in (
                ("image_url", "--image-url", "URL (or data: URL)"),
                ("file_id", "--file-id", "OpenAI Files API id"),
            ):
                group.add_argument(
                    flag,
                    dest="param__" + field.name,
                    action=_AppendReference,
                    const=kind,
                    metavar=kind.upper(),
                    help=f"input image by {what}, instead of an upload; repeatable",
                )
            return
        # A singular reference such as mask_reference -> --mask-url / --mask-file-id.
        base = field.name.removesuffix("_reference").replace("_", "-")
        for kind, suffix in (("image_url", "url"), ("file_id", "file-id")):
            group.add_argument(
                f"--{base}-{suffix}",
                dest=f"param__{field.name}__{kind}",
                metavar=kind.upper(),
                help=f"{base} by {'URL' if kind == 'image_url' else 'OpenAI file id'}, "
                "instead of an upload",
            )

    def apply(self, args: argparse.Namespace, message: Message) -> None:
        """Sets on ``message`` exactly the fields whose options were given."""
        for option in self.values:
            value = getattr(args, option.dest, None)
            if value is None:
                continue
            target = message
            for name in option.path[:-1]:
                target = getattr(target, name)  # creates (marks present) the submessage
            field = option.field
            if field.enum_type is not None:
                numbers = enum_choices(field.enum_type)
                value = [numbers[v] for v in value] if isinstance(value, list) else numbers[value]
            if isinstance(value, list):
                getattr(target, field.name).extend(value)
            else:
                setattr(target, field.name, value)
        for field in self.reference_fields:
            self._apply_reference(args, message, field)
        for field in self.map_fields:
            entries: list[tuple[str, struct_pb2.Value]] = getattr(args, "param__extra", None) or []
            container = getattr(message, field.name)
            for key, value in entries:
                if key in container:
                    raise UsageError(f"--extra {key} given twice")
                container[key].CopyFrom(value)

    @staticmethod
    def _apply_reference(
        args: argparse.Namespace, message: Message, field: FieldDescriptor
    ) -> None:
        if _is_repeated(field):
            items: list[tuple[str, str]] = getattr(args, "param__" + field.name, None) or []
            container = getattr(message, field.name)
            for kind, text in items:
                setattr(container.add(), kind, text)
            return
        given = [
            (kind, getattr(args, f"param__{field.name}__{kind}", None))
            for kind in ("image_url", "file_id")
        ]
        chosen = [(kind, text) for kind, text in given if text is not None]
        if len(chosen) > 1:
            base = field.name.removesuffix("_reference").replace("_", "-")
            raise UsageError(f"--{base}-url and --{base}-file-id are exclusive")
        for kind, text in chosen:
            setattr(getattr(message, field.name), kind, text)


_BY_MESSAGE: dict[str, ParameterOptions] = {}


def options_for(descriptor: Descriptor) -> ParameterOptions:
    """The options of a parameters message, built on first use."""
    if descriptor.full_name not in _BY_MESSAGE:
        _BY_MESSAGE[descriptor.full_name] = ParameterOptions(descriptor)
    return _BY_MESSAGE[descriptor.full_name]
