"""The storage ledger in the gateway's local database (the default without Redis):
what each client holds in the store, shared by the workers of one ``serve`` and
kept across restarts, beside the limiter's state.

Table (schema ``store``, version 1)
    ``store_holdings``  client -> bytes, objects; a row goes when its objects reach
                        0, so rows are bounded by the clients that hold something.
                        Anonymous calls are the row ``_anonymous`` (no client name
                        can spell it).

Each update is one short write transaction on the database's thread. A removal
never takes a client below zero (objects stored before the ledger existed, or
counted while the database could not be written, are not in it).
"""

from __future__ import annotations

import sqlite3

from imagegate_server.localdb import LocalDatabase, Schema
from imagegate_server.store.ledger import Holding
from imagegate_server.store.objects import ANONYMOUS

SCHEMA = Schema(
    "store",
    (
        """
        CREATE TABLE store_holdings (
            client TEXT PRIMARY KEY,
            bytes INTEGER NOT NULL,
            objects INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
    ),
)


def _row(client: str | None) -> str:
    return ANONYMOUS if client is None else client


class LocalLedger:
    """:class:`~imagegate_server.store.StorageLedger` on the local database."""

    backend = "local"

    def __init__(self, database: LocalDatabase) -> None:
        self._db = database

    async def stored(self, client: str | None, size: int) -> None:
        row, size = _row(client), max(size, 0)

        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO store_holdings (client, bytes, objects) VALUES (?, ?, 1) "
                "ON CONFLICT (client) DO UPDATE SET bytes = bytes + excluded.bytes, "
                "objects = objects + 1",
                (row, size),
            )

        await self._db.write(add)

    async def removed(self, client: str | None, size: int, objects: int = 1) -> None:
        row, size, objects = _row(client), max(size, 0), max(objects, 0)

        def subtract(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE store_holdings SET bytes = max(bytes - ?, 0), "
                "objects = max(objects - ?, 0) WHERE client = ?",
                (size, objects, row),
            )
            db.execute("DELETE FROM store_holdings WHERE client = ? AND objects = 0", (row,))

        await self._db.write(subtract)

    async def holding(self, client: str | None) -> Holding:
        row = _row(client)

        def read(db: sqlite3.Connection) -> Holding:
            found = db.execute(
                "SELECT bytes, objects FROM store_holdings WHERE client = ?", (row,)
            ).fetchone()
            return Holding() if found is None else Holding(int(found[0]), int(found[1]))

        return await self._db.read(read)
