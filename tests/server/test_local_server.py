"""Two TUIs on one machine share the embedded database through one server: the second joins the first's,
and takes it over (same address, same database) when the first quits. Real servers, real SQLite.

Before, each TUI started its own server on the same embedded.db: the second overwrote the first's users.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pianorhythm.server import local
from pianorhythm.server.dblock import DatabaseLock, read_holder
from pianorhythm.server.local import host_or_join
from tests.fixtures.server import TestClient


async def test_a_second_start_joins_the_first_and_both_players_keep_their_rows(tmp_path: Path) -> None:
    db = tmp_path / "embedded.db"
    first = await host_or_join(db, 0)
    second = await host_or_join(db, 0)
    try:
        assert first.hosting and not second.hosting
        assert second.url == first.url
        assert second.notice == f"Joined the local server already running in another window: {first.url}"
        assert first.notice.startswith("Hosting a local server. Others on this machine join with:")
        ann, bob = await TestClient.connect(first.url), await TestClient.connect(second.url)
        await ann.hello("ann")
        await bob.hello("bob")
        third = await TestClient.connect(first.url)
        await third.hello("cat")  # before: ERROR_CODE_INTERNAL "The server could not save that"
        for client in (ann, bob, third):
            await client.close()
    finally:
        await second.close()
        await first.close()
    with sqlite3.connect(db) as rows:
        assert list(rows.execute("SELECT name FROM users ORDER BY id")) == [("ann",), ("bob",), ("cat",)]


async def test_when_the_host_quits_the_joined_window_hosts_the_same_address_and_identities_resume(
    tmp_path: Path,
) -> None:
    db = tmp_path / "embedded.db"
    first = await host_or_join(db, 0)
    second = await host_or_join(db, 0)
    try:
        ann = await TestClient.connect(second.url)
        welcome = await ann.hello("ann")
        await first.close()
        assert await ann.closed() == (1001, "server shutting down")
        async with asyncio.timeout(10):
            while not second.hosting:
                await asyncio.sleep(0.05)
        holder = read_holder(db)
        assert holder is not None and (holder.pid, holder.url) == (os.getpid(), first.url)
        again = await TestClient.connect(second.url)
        resumed = await again.hello("ignored", token=welcome.resume_token)
        assert resumed.resumed and resumed.user.id == welcome.user.id
        await again.close()
    finally:
        await second.close()
        await first.close()
    assert read_holder(db) is None


async def test_a_holder_in_another_process_is_joined(tmp_path: Path) -> None:
    db = tmp_path / "embedded.db"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from pianorhythm.server.main import ServerOptions, start_server

        async def main():
            server = await start_server(ServerOptions(port=0, db_path=Path({str(db)!r})))
            print(server.url, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            await server.close()

        asyncio.run(main())
        """
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        joined = await host_or_join(db, 0)
        try:
            assert not joined.hosting and joined.url == url
            client = await TestClient.connect(joined.url)
            await client.hello("ann")
            await client.close()
        finally:
            await joined.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)


async def test_a_holder_that_never_says_its_address_gets_a_server_of_its_own_on_a_throwaway_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "ADDRESS_WAIT_S", 0.5)
    db = tmp_path / "embedded.db"
    silent = DatabaseLock.acquire(db)  # holds the database, never listens
    try:
        alone = await host_or_join(db, 0)
        try:
            assert alone.hosting and alone.db_path != db
            assert alone.notice.startswith("Another window holds the local server's database but gives no")
            client = await TestClient.connect(alone.url)
            await client.hello("ann")
            await client.close()
        finally:
            await alone.close()
        assert not alone.db_path.parent.exists()  # nothing is left behind
        assert not db.exists()  # the held database was never opened
    finally:
        silent.release()
