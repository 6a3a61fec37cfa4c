"""Any S3-compatible service (AWS S3, GCS in S3 mode, Ceph, SeaweedFS, MinIO), through
obstore: one small API (put, get, list, delete, sign) over Rust's ``object_store``,
whose S3 client streams multipart uploads, carries content type and user metadata
(``x-amz-meta-*``) and signs presigned URLs.

An object that fits one part goes up in one PUT; a larger one in parts of
``part_bytes``, at most ``part_concurrency`` in flight, so a write never holds more
than ``part_bytes * (part_concurrency + 1)``. A multipart upload that fails is
never completed, so nothing is visible; its parts stay hidden until the bucket's
lifecycle rule aborts it (docs: ``AbortIncompleteMultipartUpload``).

Links are presigned GET URLs (SigV4: at most 7 days), which carry a signature,
never the credentials.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from imagegate_server.errors import StoreUnavailable
from imagegate_server.store.backend import Attributes, Chunk, Listed, Source
from imagegate_server.store.objects import DAY_PATTERN, is_key, key_expiry, slot_time

if TYPE_CHECKING:
    from obstore import GetResult

SIGV4_MAXIMUM = datetime.timedelta(days=7)
# obstore raises its own errors, and builtins for some (FileNotFoundError: no object).
FAILURES = (BaseError, OSError)
READ_CHUNK = 1024 * 1024
_CONTENT_TYPE = "Content-Type"
_META = "imagegate-"  # x-amz-meta-imagegate-<name>
_EXPIRES = "expires"


class S3Backend:
    name = "s3"
    max_link_lifetime = SIGV4_MAXIMUM

    def __init__(
        self, store: S3Store, *, prefix: str, part_bytes: int, part_concurrency: int
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._part_bytes = part_bytes
        self._part_concurrency = part_concurrency

    async def write(self, key: str, source: Source, attributes: Attributes) -> int:
        head, rest = await _first_part(source, self._part_bytes)
        size = sum(map(_nbytes, head))

        async def parts() -> AsyncIterator[Chunk]:
            # obstore cuts what it is given into parts of chunk_size itself.
            nonlocal size
            for chunk in head:
                yield chunk
            if rest is not None:
                async for chunk in rest:
                    size += _nbytes(chunk)
                    yield chunk

        try:
            await obstore.put_async(
                self._store,
                self._prefix + key,
                _joined(head) if rest is None else parts(),
                attributes=_attributes(attributes),
                use_multipart=rest is not None,
                chunk_size=self._part_bytes,
                max_concurrency=self._part_concurrency,
            )
        except FAILURES as error:
            raise StoreUnavailable(_kind(error)) from None
        return size

    async def head(self, key: str) -> tuple[int, Attributes] | None:
        try:
            result = await obstore.get_async(
                self._store, self._prefix + key, options={"head": True}
            )
        except FileNotFoundError:
            return None
        except FAILURES as error:
            raise StoreUnavailable(_kind(error), "get") from None
        return result.meta["size"], _parsed(result.attributes, key)

    async def open(self, key: str) -> S3Object | None:
        try:
            result = await obstore.get_async(self._store, self._prefix + key)
        except FileNotFoundError:
            return None
        except FAILURES as error:
            raise StoreUnavailable(_kind(error), "get") from None
        return S3Object(result, _parsed(result.attributes, key))

    async def sign(self, key: str, expires: datetime.datetime) -> str:
        lifetime = expires - datetime.datetime.now(datetime.UTC)
        lifetime = max(min(lifetime, SIGV4_MAXIMUM), datetime.timedelta(seconds=1))
        try:
            return await obstore.sign_async(self._store, "GET", self._prefix + key, lifetime)
        except FAILURES as error:
            raise StoreUnavailable(_kind(error), "link") from None

    async def delete(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await obstore.delete_async(self._store, [self._prefix + key for key in keys])
        except FileNotFoundError:
            pass
        except FAILURES as error:
            raise StoreUnavailable(_kind(error), "delete") from None

    async def expired(self, now: datetime.datetime, limit: int) -> list[Listed]:
        """Reads the expiry slots (``<date>/<HHMM>/`` prefixes) that have passed, in
        order, rather than relying on a listing's order."""
        found: list[Listed] = []
        try:
            for day in await self._prefixes(self._prefix):
                if not DAY_PATTERN.fullmatch(day):
                    continue  # not one of ours
                if day > f"{now:%Y-%m-%d}":
                    break
                for slot in await self._prefixes(f"{self._prefix}{day}/"):
                    expiry = slot_time(day, slot)
                    if expiry is None:
                        continue
                    if expiry > now:
                        return found
                    found.extend(await self._objects(f"{day}/{slot}/", limit - len(found)))
                    if len(found) >= limit:
                        return found
        except FAILURES as error:
            raise StoreUnavailable(_kind(error), "list") from None
        return found

    async def aclose(self) -> None:
        pass  # obstore's client closes its connections when dropped

    async def _prefixes(self, prefix: str) -> list[str]:
        """The next key segments below ``prefix``, sorted."""
        listing = await obstore.list_with_delimiter_async(self._store, prefix or None)
        names = (p[len(prefix) :].rstrip("/") for p in listing["common_prefixes"])
        return sorted(name for name in names if name)

    async def _objects(self, slot: str, limit: int) -> list[Listed]:
        found: list[Listed] = []
        start = len(self._prefix)
        stream = obstore.list(self._store, self._prefix + slot, chunk_size=min(limit, 1000))
        async for page in stream:
            for meta in page:
                key = meta["path"][start:]
                if is_key(key):
                    found.append(Listed(key, meta["size"]))
                    if len(found) >= limit:
                        return found
        return found


class S3Object:
    """An S3 object being read, streamed in chunks."""

    def __init__(self, result: GetResult, attributes: Attributes) -> None:
        self._result = result
        self.size: int = result.meta["size"]
        self.attributes = attributes

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._result.stream(min_chunk_size=READ_CHUNK):
                yield bytes(chunk)
        except FAILURES as error:
            raise StoreUnavailable(_kind(error), "get") from None

    async def aclose(self) -> None:
        pass  # an unread body is dropped with the result


async def _first_part(
    source: Source, part_bytes: int
) -> tuple[list[Chunk], AsyncIterator[Chunk] | None]:
    """The object's first chunks, up to a part (or all of it), and the iterator of the
    rest, or None when there is no more: an object of one part goes up in one
    request. Holds at most a part and one chunk, never a copy of them."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source).cast("B")
        if len(view) <= part_bytes:
            return [view], None
        return [view[:part_bytes]], _slices(view[part_bytes:], part_bytes)
    iterator = aiter(source)
    gathered: list[Chunk] = []
    size = 0
    async for chunk in iterator:
        gathered.append(chunk)
        size += _nbytes(chunk)
        if size > part_bytes:
            return gathered, iterator
    return gathered, None


def _nbytes(chunk: Chunk) -> int:
    return chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)


def _joined(chunks: list[Chunk]) -> Chunk:
    """One buffer for a single PUT (at most a part: the one copy, when there are
    several chunks)."""
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _slices(view: memoryview, size: int) -> AsyncIterator[Chunk]:
    for start in range(0, len(view), size):
        yield view[start : start + size]


def _attributes(attributes: Attributes) -> dict[Any, str]:
    values: dict[Any, str] = {_CONTENT_TYPE: attributes.content_type}
    for name, value in attributes.metadata.items():
        values[_META + name] = value
    values[_META + _EXPIRES] = attributes.expires.isoformat()
    return values


def _parsed(values: dict[Any, str], key: str) -> Attributes:
    metadata = {
        str(name)[len(_META) :]: value
        for name, value in values.items()
        if str(name).startswith(_META) and str(name) != _META + _EXPIRES
    }
    try:
        expires = datetime.datetime.fromisoformat(values[_META + _EXPIRES])
    except (KeyError, ValueError):
        expires = key_expiry(key) or datetime.datetime.now(datetime.UTC)
    return Attributes(
        content_type=values.get(_CONTENT_TYPE, "application/octet-stream"),
        expires=expires,
        metadata=metadata,
    )


def _kind(error: BaseException) -> str:
    if isinstance(error, PermissionDeniedError | UnauthenticatedError):
        return "denied"
    if isinstance(error, FileNotFoundError):
        return "not_found"  # the bucket, on a write
    # object_store reports transport failures as generic errors naming the HTTP
    # client's error kind; the text itself goes nowhere (it names the endpoint).
    text = str(error)
    if "kind: Timeout" in text or "timed out" in text:
        return "timeout"
    if any(f"kind: {kind}" in text for kind in ("Connect", "Request", "Interrupted")):
        return "unreachable"
    return "refused"
