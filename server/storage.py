"""SQLite storage, the directory of a single node (pianorhythm.server.directory): users and their ids,
persistent room settings and bans, chat, and (in memory) connections by address. WAL mode, versioned
migrations.

Every call runs on one dedicated thread (the connection never leaves it), so the event loop never blocks on
disk. Notes never come here. An open Storage holds the database's lock (pianorhythm.server.dblock): a second
server on the same file fails to open it with DatabaseInUse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from pianorhythm.server.core.actions import (
    ClearChat,
    DeleteRoom,
    PruneUsers,
    SaveChat,
    SaveRoom,
    SaveUser,
    Store,
)
from pianorhythm.server.core.records import BanRecord, ChatRecord, RoomRecord, UserRecord
from pianorhythm.server.dblock import DatabaseLock
from pianorhythm.server.directory import AddressCounts, Startup

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the first schema.
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        color TEXT NOT NULL,
        last_room TEXT NOT NULL DEFAULT '',
        last_seen_us INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE rooms (
        name TEXT PRIMARY KEY,
        visible INTEGER NOT NULL,
        password_hash TEXT NOT NULL,
        user_limit INTEGER NOT NULL,
        chat_enabled INTEGER NOT NULL,
        owner_only_play INTEGER NOT NULL,
        owner_id INTEGER NOT NULL
    );
    CREATE TABLE bans (
        room TEXT NOT NULL REFERENCES rooms(name) ON DELETE CASCADE,
        user_id INTEGER NOT NULL,
        until_us INTEGER NOT NULL,
        PRIMARY KEY (room, user_id)
    );
    CREATE TABLE chat (
        id INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        user_color TEXT NOT NULL,
        content TEXT NOT NULL,
        server_time_us INTEGER NOT NULL
    );
    CREATE INDEX chat_room_id ON chat (room, id);
    """,
    # 2: a ban covers the banned user's address too, and /bans lists names; kicks leave a short cool-down.
    """
    ALTER TABLE bans ADD COLUMN name TEXT NOT NULL DEFAULT '';
    ALTER TABLE bans ADD COLUMN address TEXT NOT NULL DEFAULT '';
    ALTER TABLE bans ADD COLUMN kick INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: when a room was last used, so rooms nobody enters are forgotten; rooms already stored count as
    # used at the upgrade (server time is microseconds since the Unix epoch).
    """
    ALTER TABLE rooms ADD COLUMN last_used_us INTEGER NOT NULL DEFAULT 0;
    UPDATE rooms SET last_used_us = CAST(strftime('%s', 'now') AS INTEGER) * 1000000;
    """,
    # 4: users are pruned by last_seen_us; those stored without one (new, never cleanly gone) count as
    # seen at the upgrade.
    """
    UPDATE users SET last_seen_us = CAST(strftime('%s', 'now') AS INTEGER) * 1000000 WHERE last_seen_us = 0;
    """,
    # 5: user ids come from a counter that only grows (leased a block at a time), not MAX(id) + 1 at start,
    # so pruning any user is safe: an id never comes back.
    """
    CREATE TABLE counters (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
    INSERT INTO counters SELECT 'user_id', COALESCE(MAX(id), 0) + 1 FROM users;
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


ID_BLOCK: Final = 32  # user ids leased per write to the counter; a restart skips what is left of a block


class Storage:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage")
        self._db: sqlite3.Connection | None = None
        self._lock: DatabaseLock | None = None
        self._next_id = self._id_end = 0  # the leased block of user ids not handed out yet
        self._addresses = AddressCounts()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def open(self) -> Startup:
        try:
            return await self._run(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def advertise(self, url: str) -> None:
        """Record where the server on this database listens (see pianorhythm.server.dblock)."""
        if self._lock is not None:
            self._lock.advertise(url)

    def _open(self) -> Startup:
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            log.info("created the directory %s for the database", self.path.parent)
        self._lock = DatabaseLock.acquire(self.path)
        try:
            return self._open_locked()
        except BaseException:
            self._close()
            raise

    def _open_locked(self) -> Startup:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema {version}, newer than this server ({SCHEMA_VERSION})."
            )
        for number in range(version, SCHEMA_VERSION):
            log.info("migrating %s to schema %d", self.path, number + 1)
            db.executescript(f"BEGIN; {MIGRATIONS[number]}; PRAGMA user_version = {number + 1}; COMMIT;")
        self._db = db
        return Startup(self._rooms())

    def _close(self) -> None:
        try:
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
                self._db = None
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("storage is not open")
        return self._db

    # -- user ids and addresses ----------------------------------------------------------------------

    async def new_user_id(self) -> int:
        if self._next_id >= self._id_end:
            start = await self._run(self._lease_ids)
            self._next_id, self._id_end = start, start + ID_BLOCK
        uid = self._next_id
        self._next_id += 1
        return uid

    def _lease_ids(self) -> int:
        """Take the next ID_BLOCK user ids from the counter (committed before any is handed out)."""
        # Autocommit: the statement is its own transaction, done once its rows are read.
        [(end,)] = self.db.execute(
            "UPDATE counters SET next = next + ? WHERE name = 'user_id' RETURNING next", (ID_BLOCK,)
        ).fetchall()
        return int(end) - ID_BLOCK

    def connections_from(self, address: str) -> int:
        return self._addresses.get(address)

    def connection_opened(self, address: str) -> None:
        self._addresses.opened(address)

    def connection_closed(self, address: str) -> None:
        self._addresses.closed(address)

    async def admit(self, address: str, cap: int) -> bool:
        return True  # one node: the count checked before the upgrade is the whole truth

    async def release(self, address: str) -> None:
        """Nothing counted elsewhere to give back (connection_closed keeps the count)."""

    def census(self) -> dict[str, int]:
        return {"addresses": len(self._addresses)}

    # -- reads ---------------------------------------------------------------------------------------

    async def user_by_token(self, token_hash: str) -> UserRecord | None:
        return await self._run(self._user_by_token, token_hash)

    def _user_by_token(self, token_hash: str) -> UserRecord | None:
        row = self.db.execute(
            "SELECT id, name, color, last_room, last_seen_us FROM users WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        return UserRecord(*row) if row else None

    def _rooms(self) -> list[RoomRecord]:
        rooms = {
            row[0]: RoomRecord(
                row[0], bool(row[1]), row[2], row[3], bool(row[4]), bool(row[5]), row[6], last_used_us=row[7]
            )
            for row in self.db.execute(
                "SELECT name, visible, password_hash, user_limit, chat_enabled, owner_only_play, owner_id,"
                " last_used_us FROM rooms"
            )
        }
        bans: dict[str, list[BanRecord]] = {}
        for room, user_id, until, name, address, kick in self.db.execute(
            "SELECT room, user_id, until_us, name, address, kick FROM bans"
        ):
            bans.setdefault(room, []).append(BanRecord(user_id, name, address, until, bool(kick)))
        return [dataclasses.replace(r, bans=tuple(bans.get(name, ()))) for name, r in rooms.items()]

    async def recent_chat(self, room: str, limit: int) -> list[ChatRecord]:
        records, _ = await self._run(self._history, room, 0, 0, limit)
        return records

    async def history(
        self, room: str, before_id: int, after_id: int, limit: int
    ) -> tuple[list[ChatRecord], bool]:
        return await self._run(self._history, room, before_id, after_id, limit)

    def _history(self, room: str, before_id: int, after_id: int, limit: int) -> tuple[list[ChatRecord], bool]:
        columns = "id, room, user_id, user_name, user_color, content, server_time_us"
        if after_id:
            sql = f"SELECT {columns} FROM chat WHERE room = ? AND id > ? ORDER BY id ASC LIMIT ?"
            rows = self.db.execute(sql, (room, after_id, limit + 1)).fetchall()
            return [ChatRecord(*r) for r in rows[:limit]], len(rows) > limit
        before = before_id or (1 << 62)
        sql = f"SELECT {columns} FROM chat WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?"
        rows = self.db.execute(sql, (room, before, limit + 1)).fetchall()
        return [ChatRecord(*r) for r in reversed(rows[:limit])], len(rows) > limit

    # -- writes --------------------------------------------------------------------------------------

    async def save_chat(self, save: SaveChat) -> list[ChatRecord]:
        return await self._run(self._save_chat, save.lines)

    def _save_chat(self, lines: tuple[ChatRecord, ...]) -> list[ChatRecord]:
        """The lines stored, each numbered with its row's id (the highest stored, plus one: in storing
        order), in one transaction committed before the caller goes on."""
        db = self.db
        sql = (
            "INSERT INTO chat (room, user_id, user_name, user_color, content, server_time_us)"
            " VALUES (?, ?, ?, ?, ?, ?) RETURNING id"
        )
        with db:
            db.execute("BEGIN")
            return [
                dataclasses.replace(
                    c,
                    id=db.execute(
                        sql, (c.room, c.user_id, c.user_name, c.user_color, c.content, c.server_time_us)
                    ).fetchone()[0],
                )
                for c in lines
            ]

    async def apply(self, store: Store) -> None:
        await self._run(self._apply, store)

    def _apply(self, store: Store) -> None:
        db = self.db
        with db:  # one transaction, committed before the caller goes on
            db.execute("BEGIN")
            if isinstance(store, SaveUser):
                u = store.user
                if store.token_hash is not None:
                    db.execute(
                        "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                        (u.id, store.token_hash, u.name, u.color, u.last_room, u.last_seen_us),
                    )
                else:
                    db.execute(
                        "UPDATE users SET name = ?, color = ?, last_room = ?, last_seen_us = ? WHERE id = ?",
                        (u.name, u.color, u.last_room, u.last_seen_us, u.id),
                    )
            elif isinstance(store, SaveRoom):
                r = store.room
                db.execute(
                    "INSERT OR REPLACE INTO rooms (name, visible, password_hash, user_limit, chat_enabled,"
                    " owner_only_play, owner_id, last_used_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.name,
                        r.visible,
                        r.password_hash,
                        r.user_limit,
                        r.chat_enabled,
                        r.owner_only_play,
                        r.owner_id,
                        r.last_used_us,
                    ),
                )
                db.execute("DELETE FROM bans WHERE room = ?", (r.name,))
                db.executemany(
                    "INSERT INTO bans (room, user_id, until_us, name, address, kick)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(r.name, b.user_id, b.until_us, b.name, b.address, b.kick) for b in r.bans],
                )
            elif isinstance(store, DeleteRoom):
                db.execute("DELETE FROM rooms WHERE name = ?", (store.name,))
            elif isinstance(store, ClearChat):
                db.execute("DELETE FROM chat WHERE room = ?", (store.room,))
            elif isinstance(store, PruneUsers):
                self._prune_users(store)

    def _prune_users(self, store: PruneUsers) -> None:
        # Any user may go: ids come from the counter, so a pruned user's id (which rooms and bans may still
        # name) is never handed out again.
        stale = self.db.execute("SELECT id FROM users WHERE last_seen_us < ?", (store.before_us,)).fetchall()
        gone = [(uid,) for (uid,) in stale if uid not in store.keep]
        self.db.executemany("DELETE FROM users WHERE id = ?", gone)
        if gone:
            log.info("pruned %d user(s) not seen since %d", len(gone), store.before_us)
