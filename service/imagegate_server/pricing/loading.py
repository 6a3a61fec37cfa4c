"""Building the price table: the built-in ``prices.toml`` with the operator's file
(``IMAGEGATE_PRICES_FILE``, same schema) merged over it.

Merging is per entry, never per field, so an entry always holds prices from one
source: an operator's ``[models."gpt-image-2"]`` replaces the built-in entry
whole (and must therefore be complete), ``[aliases]`` and ``[output_tokens]``
entries likewise; ``[estimates]`` is merged key by key. A name the operator defines
as a model stops being a built-in alias and vice versa. The operator file's
``version`` (optional) is reported beside the built-in one.

The file is read once, at start-up: prices change rarely, and a restart is how a
gateway picks up a new table (the built-in one changes only with a release anyway).
"""

from __future__ import annotations

import datetime
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path

from imagegate_server.errors import StartupError
from imagegate_server.pricing.entries import TokenPrices
from imagegate_server.pricing.estimates import build_estimates
from imagegate_server.pricing.fields import PricesFileError, quote_key
from imagegate_server.pricing.schema import PriceDocument, parse_document
from imagegate_server.pricing.table import PriceTable
from imagegate_server.settings import Settings

BUILTIN_FILE = "prices.toml"


def load_price_table(settings: Settings) -> PriceTable:
    """The table this gateway prices with. Raises :class:`StartupError` with one
    line naming the file and the field when the operator file is unusable."""
    path = settings.prices_file
    try:
        return load_prices(path)
    except PricesFileError as exc:
        shown = repr(str(path)[:200]) if path is not None else "(built-in table)"
        raise StartupError(f"IMAGEGATE_PRICES_FILE {shown}: {exc}") from None


def load_prices(override: Path | None = None, *more: Path) -> PriceTable:
    """The built-in table, merged with the file at ``override`` when given, then with
    each of ``more`` (an upstream's own prices over the gateway's), in order. The
    table's override version is the last dated one's. Raises :class:`PricesFileError`."""
    builtin = read_document(resources.files(__package__).joinpath(BUILTIN_FILE).read_text())
    if builtin.version is None:
        raise PricesFileError("version", "the built-in table must carry its date")
    document = builtin
    override_version = None
    for path in (override, *more):
        if path is None:
            continue
        extra = read_document(_read(path))
        override_version = extra.version or override_version
        document = merge(document, extra)
    return build_table(document, builtin.version, override_version)


def read_document(text: str) -> PriceDocument:
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages name the line and column, not the content.
        message = " ".join(str(exc).split())[:200]
        raise PricesFileError("", f"not valid TOML: {message}") from None
    return parse_document(data)


def merge(base: PriceDocument, override: PriceDocument) -> PriceDocument:
    """``override``'s entries over ``base``'s (see the module docstring)."""
    models = {k: v for k, v in base.models.items() if k not in override.aliases}
    models.update(override.models)
    aliases = {k: v for k, v in base.aliases.items() if k not in override.models}
    aliases.update(override.aliases)
    return PriceDocument(
        version=base.version,
        models=models,
        aliases=aliases,
        output_tokens={**base.output_tokens, **override.output_tokens},
        estimates={**base.estimates, **override.estimates},
    )


def build_table(
    document: PriceDocument,
    version: datetime.date,
    override_version: datetime.date | None = None,
) -> PriceTable:
    """Check what only the merged table can show (references between entries)."""
    for key, entry in document.models.items():
        if isinstance(entry, TokenPrices) and entry.output_tokens not in document.output_tokens:
            raise PricesFileError(
                f"models.{quote_key(key)}.output_tokens", "names no [output_tokens] profile"
            )
    for key, target in document.aliases.items():
        if target not in document.models:
            raise PricesFileError(f"aliases.{quote_key(key)}", "names no model entry")
    return PriceTable(
        version=version,
        override_version=override_version,
        models=dict(document.models),
        aliases=dict(document.aliases),
        output_tokens=dict(document.output_tokens),
        estimates=build_estimates(document.estimates),
    )


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PricesFileError("", "no such file") from None
    except OSError as exc:
        raise PricesFileError("", f"cannot read it ({exc.strerror or 'I/O error'})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PricesFileError("", "is not UTF-8 text") from None
