"""An upstream's key, read from where the upstreams file says it is.

    key_file     a file (a mounted secret), read whole, whitespace stripped
    key_secret   a file of that name in the secrets directory (IMAGEGATE_SECRETS_DIR,
                 default /run/secrets), as pydantic-settings reads settings there
    key_env      an environment variable of the gateway's process

Read at every load of the upstreams file; the two file kinds are watched like the
file itself, so a rotated key is used from the next poll on. A problem names the
field and says what is wrong (no such file, empty, unset), never the value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import SecretStr

from imagegate_server.routing.schema import UpstreamEntry

# A key is a line of text; a bigger "key file" is some other file named by mistake.
_MAX_KEY_BYTES = 16 * 1024
# It goes into an HTTP header as it is: printable ASCII, no spaces.
_KEY = re.compile(r"[\x21-\x7e]+")


class KeyProblem(Exception):
    """``where``: the field (``key_file``...); the message says what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(problem)
        self.where = where
        self.problem = problem


def key_path(entry: UpstreamEntry, secrets_dir: Path) -> Path | None:
    """The file the key is read from (None: an environment variable)."""
    if entry.key_file is not None:
        return entry.key_file
    if entry.key_secret is not None:
        return secrets_dir / entry.key_secret
    return None


def read_key(entry: UpstreamEntry, secrets_dir: Path) -> SecretStr:
    """Raises :class:`KeyProblem`."""
    path = key_path(entry, secrets_dir)
    if path is None:
        assert entry.key_env is not None  # the schema wants exactly one reference
        value = os.environ.get(entry.key_env, "").strip()
        if not value:
            raise KeyProblem("key_env", "names an environment variable that is unset or empty")
        return _checked("key_env", value)
    where = "key_file" if entry.key_file is not None else "key_secret"
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_KEY_BYTES + 1)
    except FileNotFoundError:
        raise KeyProblem(where, "names no file") from None
    except OSError as exc:
        raise KeyProblem(where, f"cannot read the file ({exc.strerror or 'I/O error'})") from None
    if len(raw) > _MAX_KEY_BYTES:
        raise KeyProblem(where, f"names a file larger than a key ({_MAX_KEY_BYTES} bytes)")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyProblem(where, "names a file that is not UTF-8 text") from None
    if not value:
        raise KeyProblem(where, "names an empty file")
    return _checked(where, value)


def _checked(where: str, value: str) -> SecretStr:
    if not _KEY.fullmatch(value):
        raise KeyProblem(where, "holds no single key (printable ASCII, no spaces)")
    return SecretStr(value)
