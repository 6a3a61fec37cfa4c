"""The gateway's local database: where it lives, how it is opened, schema versions,
and the one-line start-up errors an operator sees."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from imagegate_server.errors import StartupError
from imagegate_server.localdb import FILE_NAME, LocalDatabase, Schema, open_existing

NOTES_V1 = Schema("notes", ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",))
NOTES_V2 = Schema(
    "notes", (*NOTES_V1.steps, "ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT ''")
)


async def test_opening_makes_a_private_directory_and_file_in_wal_mode(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "data"
    database = await LocalDatabase.open(directory, NOTES_V1)
    try:
        assert database.path == directory / FILE_NAME
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE(database.path.stat().st_mode) == 0o600
        await database.write(lambda db: db.execute("INSERT INTO notes (text) VALUES ('a')"))
        mode = await database.read(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
        # Its side files take the file's mode, not the umask's.
        assert stat.S_IMODE((directory / f"{FILE_NAME}-wal").stat().st_mode) == 0o600
    finally:
        await database.aclose()


async def test_a_relative_directory_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    database = await LocalDatabase.open(Path("data"), NOTES_V1)
    await database.aclose()
    assert database.path == tmp_path / "data" / FILE_NAME


async def test_committed_rows_survive_reopening_and_a_failed_transaction_leaves_none(
    tmp_path: Path,
) -> None:
    database = await LocalDatabase.open(tmp_path, NOTES_V1)

    def insert_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO notes (text) VALUES ('half')")
        raise RuntimeError("the work failed")

    await database.write(lambda db: db.execute("INSERT INTO notes (text) VALUES ('kept')"))
    with pytest.raises(RuntimeError):
        await database.write(insert_then_fail)
    await database.aclose()

    again = await LocalDatabase.open(tmp_path, NOTES_V1)
    try:
        rows = await again.read(lambda db: db.execute("SELECT text FROM notes").fetchall())
        assert rows == [("kept",)]
    finally:
        await again.aclose()


async def test_a_schema_migrates_forward_once_and_a_newer_file_is_refused(
    tmp_path: Path,
) -> None:
    first = await LocalDatabase.open(tmp_path, NOTES_V1)
    await first.write(lambda db: db.execute("INSERT INTO notes (text) VALUES ('old')"))
    await first.aclose()

    second = await LocalDatabase.open(tmp_path, NOTES_V2)
    rows = await second.read(lambda db: db.execute("SELECT text, author FROM notes").fetchall())
    assert rows == [("old", "")]
    version = await second.read(
        lambda db: db.execute(
            "SELECT version FROM schema_versions WHERE component = 'notes'"
        ).fetchone()
    )
    assert version == (2,)
    await second.aclose()

    # Opening with v2 again runs nothing (the ALTER would fail if it ran twice).
    await (await LocalDatabase.open(tmp_path, NOTES_V2)).aclose()

    with pytest.raises(StartupError) as newer:
        await LocalDatabase.open(tmp_path, NOTES_V1)
    assert str(newer.value) == (
        f"IMAGEGATE_DATA_DIR: '{tmp_path / FILE_NAME}' was written by a newer imagegate "
        f"(notes schema version 2; this one knows 1); upgrade, or use another data directory"
    )


async def test_a_file_that_is_no_database_stops_the_start_with_one_line(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not an SQLite database, just text " * 100)
    with pytest.raises(StartupError) as caught:
        await LocalDatabase.open(tmp_path, NOTES_V1)
    assert str(caught.value) == (
        f"IMAGEGATE_DATA_DIR: '{tmp_path / FILE_NAME}' cannot be used as the gateway's "
        f"database (file is not a database)"
    )


async def test_a_directory_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StartupError) as caught:
        await LocalDatabase.open(tmp_path / "file" / "data", NOTES_V1)
    assert str(caught.value) == (
        f"IMAGEGATE_DATA_DIR: cannot create the data directory '{tmp_path / 'file' / 'data'}' "
        f"(Not a directory); set IMAGEGATE_DATA_DIR to a writable directory"
    )


def test_operator_commands_read_an_existing_database_and_never_create_one(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError):
        open_existing(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
