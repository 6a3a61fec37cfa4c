"""Token counts of one call, as OpenAI's ``usage`` reports them, and how a streamed
call's per-image reports add up.

:class:`TokenUsage` is neutral (no protobuf, no JSON): the gateway builds it from
the upstream's ``usage`` object with :meth:`TokenUsage.from_openai`, or from its own
proto ``Usage`` with the constructor.

Streams. OpenAI's completed events (``image_generation.completed``,
``image_edit.completed``) each carry a ``usage``; with ``n > 1`` there is one
completed event per image and none says which image it is. What one event's usage
covers is not documented. The emulator, modelled on the single-image case, reports
in each event the usage of generating that one image *including the call's input
tokens*. :func:`combine_streamed` therefore counts input tokens once (the largest
report of each kind: every event repeats the same input) and sums output tokens (each
event's image is its own). A unary call reports input once and the output of all
images, so the two agree; a streamed call with partial images additionally carries
the partial images' output tokens, which OpenAI bills (100 image tokens each) and
the sum keeps.

Uncertain: a community report says images of an ``n > 1`` call are "billed as
though they were separately performed, no input benefit", i.e. input once per image.
If the live API reports that, each event's input is that image's own and must be
summed as well: ``combine_streamed(..., inputs="per_event")``. Check with a live
``n=2`` streamed call (does the unary ``input_tokens`` double?) before relying on
either for exact billing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

MAX_TOKENS = 10**12
"""More tokens than this in one count is no usage (a trillion tokens would cost
millions of dollars); it also keeps every cost within a 64-bit integer."""


class InvalidUsage(ValueError):
    """An upstream ``usage`` object that cannot be priced. ``str()`` names the field
    and what is wrong with it, never its value."""


@dataclass(frozen=True)
class TokenUsage:
    """What one call consumed, by token kind. Covers the whole call (all ``n``
    images): it is never multiplied by ``n``."""

    text_in: int = 0
    image_in: int = 0
    text_out: int = 0
    image_out: int = 0
    output_itemised: bool = False
    """Whether the upstream split output tokens into text and image (OpenAI's
    optional ``output_tokens_details``). When it did not, every output token is in
    ``image_out``: image is the dearer rate, and what an image model mostly makes."""

    def __post_init__(self) -> None:
        for name in ("text_in", "image_in", "text_out", "image_out"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"TokenUsage.{name} must be an integer >= 0")

    @property
    def input_tokens(self) -> int:
        return self.text_in + self.image_in

    @property
    def output_tokens(self) -> int:
        return self.text_out + self.image_out

    @classmethod
    def from_openai(cls, usage: Mapping[str, object]) -> TokenUsage:
        """From an ``ImagesUsage`` object (unary response or completed event).

        ``input_tokens`` and ``output_tokens`` are required (as the spec has them).
        Tokens the details leave unexplained are priced at the dearer image rate:
        input beyond ``text_tokens + image_tokens`` counts as image input; output
        without ``output_tokens_details`` (or with an empty one, as some streams send)
        is all image output, and output beyond the itemised text tokens is image
        output. Raises :class:`InvalidUsage` for a count that is missing where
        required, no integer, negative or above :data:`MAX_TOKENS`.
        """
        input_total = _count(usage, "input_tokens", required=True)
        output_total = _count(usage, "output_tokens", required=True)
        in_details = _details(usage, "input_tokens_details")
        text_in = _count(in_details, "input_tokens_details.text_tokens")
        image_in = _count(in_details, "input_tokens_details.image_tokens")
        image_in += max(0, input_total - text_in - image_in)

        out_details = _details(usage, "output_tokens_details")
        itemised = any(key in out_details for key in ("text_tokens", "image_tokens"))
        if not itemised:
            return cls(text_in, image_in, 0, output_total, output_itemised=False)
        text_out = _count(out_details, "output_tokens_details.text_tokens")
        image_out = _count(out_details, "output_tokens_details.image_tokens")
        image_out = max(image_out, output_total - text_out)
        return cls(text_in, image_in, text_out, image_out, output_itemised=True)


def combine_streamed(
    usages: Iterable[TokenUsage], *, inputs: Literal["once", "per_event"] = "once"
) -> TokenUsage | None:
    """The usage of a whole streamed call from its completed events' usages (in any
    order); None when no event carried one. See the module docstring for the rule
    and its assumption. ``output_itemised`` holds only when every event itemised."""
    reports = list(usages)
    if not reports:
        return None
    if inputs == "once":
        text_in = max(u.text_in for u in reports)
        image_in = max(u.image_in for u in reports)
    else:
        text_in = sum(u.text_in for u in reports)
        image_in = sum(u.image_in for u in reports)
    return TokenUsage(
        text_in=text_in,
        image_in=image_in,
        text_out=sum(u.text_out for u in reports),
        image_out=sum(u.image_out for u in reports),
        output_itemised=all(u.output_itemised for u in reports),
    )


def _details(usage: Mapping[str, object], name: str) -> Mapping[str, object]:
    value = usage.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidUsage(f"usage.{name}: must be an object")
    return value


def _count(source: Mapping[str, object], field: str, *, required: bool = False) -> int:
    key = field.rsplit(".", 1)[-1]
    value = source.get(key)
    if value is None:
        if required:
            raise InvalidUsage(f"usage.{field}: is missing")
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise InvalidUsage(f"usage.{field}: must be an integer from 0 to {MAX_TOKENS}")
    return value
