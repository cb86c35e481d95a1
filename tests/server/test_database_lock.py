"""One server per database, on a real SQLite file: a second server in this process or another is refused,
and `--db` into a missing directory says that it created it.

Before the lock, two servers on one file each numbered new users from the same MAX(id) + 1: the second
overwrote the first's user rows and the next insert failed ("storage failed", ERROR_CODE_INTERNAL).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from pianorhythm.server.dblock import DatabaseInUse, read_holder
from pianorhythm.server.main import ServerOptions, start_server
from pianorhythm.server.storage import Storage
from tests.fixtures.server import TestClient

CLI = Path(sys.executable).with_name("pianorhythm-tui")


async def test_a_second_storage_on_one_database_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    first = Storage(db)
    await first.open()
    second = Storage(db)
    with pytest.raises(DatabaseInUse) as refused:
        await second.open()
    assert f"in use by another pianorhythm-tui server (process {os.getpid()})" in str(refused.value)
    assert str(refused.value).endswith("stop that server or give this one its own --db PATH.")
    await first.close()
    assert read_holder(db) is None
    third = Storage(db)
    await third.open()
    await third.close()


async def test_a_second_server_on_one_database_is_refused_and_the_first_keeps_its_users(
    tmp_path: Path,
) -> None:
    db = tmp_path / "server.db"
    first = await start_server(ServerOptions(port=0, db_path=db))
    try:
        holder = read_holder(db)
        assert holder is not None and (holder.pid, holder.url) == (os.getpid(), first.url)
        with pytest.raises(DatabaseInUse, match=f"serving {first.url}"):
            await start_server(ServerOptions(port=0, db_path=db))
        clients = [await TestClient.connect(first.url) for _ in range(2)]
        for index, client in enumerate(clients):
            await client.hello(f"player{index}")
        ids = [c.user_id for c in clients]
        for client in clients:
            await client.close()
    finally:
        await first.close()
    with sqlite3.connect(db) as rows:
        assert [r[0] for r in rows.execute("SELECT id FROM users ORDER BY id")] == ids


async def test_a_server_that_cannot_listen_lets_go_of_its_database(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    first = await start_server(ServerOptions(port=0, db_path=tmp_path / "other.db"))
    try:
        with pytest.raises(OSError):
            await start_server(ServerOptions(port=first.port, db_path=db))
        assert read_holder(db) is None
        again = await start_server(ServerOptions(port=0, db_path=db))
        await again.close()
    finally:
        await first.close()


async def test_a_second_server_process_on_one_database_exits_1_with_one_sentence(tmp_path: Path) -> None:
    db = tmp_path / "server.db"
    first = await start_server(ServerOptions(port=0, db_path=db))
    try:
        proc = await asyncio.create_subprocess_exec(
            str(CLI), "--server", "--port", "0", "--db", str(db),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await first.close()
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].endswith(
        f"The database {db} is in use by another pianorhythm-tui server (process {os.getpid()}, serving "
        f"{first.url}); stop that server or give this one its own --db PATH."
    )


async def test_a_database_in_a_missing_directory_creates_it_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "new" / "dir" / "server.db"
    caplog.set_level(logging.INFO, logger="pianorhythm.server.storage")
    storage = Storage(db)
    await storage.open()
    await storage.close()
    assert db.exists()
    assert f"created the directory {db.parent} for the database" in caplog.messages
    caplog.clear()
    again = Storage(db)
    await again.open()
    await again.close()
    assert not any("created the directory" in m for m in caplog.messages)
