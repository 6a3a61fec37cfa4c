"""Image sizes: ``WxH`` parsed, and whether a size is one a model accepts."""

from __future__ import annotations

import re

from imagegate_server.models.rules import ModelRules

# ASCII digits only: str.isdigit() also accepts superscripts and circled digits (which
# int() then refuses) and Arabic-Indic digits (which int() reads as 1024). At most six
# digits a side keeps absurd sizes cheap to reject.
_SIZE = re.compile(r"([0-9]{1,6})x([0-9]{1,6})")


def parse_size(size: str) -> tuple[int, int] | None:
    """``"1536x1024"`` -> (1536, 1024); None for ``auto`` or anything malformed."""
    match = _SIZE.fullmatch(size)
    if match is None:
        return None
    return int(match[1]), int(match[2])


def size_allowed(rules: ModelRules, size: str) -> bool:
    """Whether ``size`` is a literal size of the model or satisfies its WxH rule."""
    if size in rules.sizes:
        return True
    flexible = rules.flexible_size
    dims = parse_size(size)
    if flexible is None or dims is None:
        return False
    width, height = dims
    if width <= 0 or height <= 0:
        return False
    if width % flexible.multiple_of or height % flexible.multiple_of:
        return False
    if max(width, height) > flexible.max_edge or width * height > flexible.max_pixels:
        return False
    return max(width, height) / min(width, height) <= flexible.max_aspect_ratio
