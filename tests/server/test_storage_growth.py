"""Bounded growth in storage, on a real SQLite file: users pruned without an id ever coming back (ids come
from a leased counter), rooms forgotten with their bans, the migrations that date what an older database
already holds and start the id counter, and connections counted by address without keeping idle ones."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pianorhythm.server.core.actions import DeleteRoom, PruneUsers, SaveRoom, SaveUser
from pianorhythm.server.core.crypto import hash_token
from pianorhythm.server.core.records import BanRecord, RoomRecord, UserRecord
from pianorhythm.server.storage import ID_BLOCK, MIGRATIONS, Storage

DAY = 86_400_000_000
NOW = 1_800_000_000_000_000


async def test_users_not_seen_since_the_cutoff_are_pruned_but_ids_never_come_back(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "server.db")
    await storage.open()
    ids = [await storage.new_user_id() for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    seen = {1: NOW - 40 * DAY, 2: NOW - 31 * DAY, 3: NOW - 29 * DAY, 4: NOW - 45 * DAY, 5: NOW - 50 * DAY}
    for uid, last_seen in seen.items():
        await storage.apply(SaveUser(UserRecord(uid, f"u{uid}", "#ffffff", "", last_seen), f"hash-{uid}"))
    await storage.apply(PruneUsers(NOW - 30 * DAY, keep=frozenset({4})))
    assert await storage.user_by_token("hash-1") is None
    assert await storage.user_by_token("hash-2") is None
    assert await storage.user_by_token("hash-3") == UserRecord(3, "u3", "#ffffff", "", NOW - 29 * DAY)
    assert await storage.user_by_token("hash-4") is not None  # online now
    assert await storage.user_by_token("hash-5") is None  # even the newest: ids come from a counter
    await storage.close()

    reopened = Storage(tmp_path / "server.db")
    await reopened.open()
    # A new lease: the rest of the first block (6..32) is skipped, no id handed out or stored comes back.
    assert [await reopened.new_user_id() for _ in range(2)] == [ID_BLOCK + 1, ID_BLOCK + 2]
    await reopened.close()


async def test_a_forgotten_room_takes_its_bans_and_last_use_round_trips(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "server.db")
    await storage.open()
    await storage.apply(
        SaveRoom(
            RoomRecord(
                "kept", owner_id=1, bans=(BanRecord(7, "seven", "10.0.0.7", NOW + DAY),), last_used_us=NOW
            )
        )
    )
    await storage.apply(
        SaveRoom(
            RoomRecord(
                "gone",
                owner_id=1,
                bans=(BanRecord(8, "eight", "10.0.0.8", NOW + DAY),),
                last_used_us=NOW - DAY,
            )
        )
    )
    await storage.apply(DeleteRoom("gone"))
    await storage.close()

    reopened = Storage(tmp_path / "server.db")
    startup = await reopened.open()
    assert startup.rooms == [
        RoomRecord("kept", owner_id=1, bans=(BanRecord(7, "seven", "10.0.0.7", NOW + DAY),), last_used_us=NOW)
    ]
    await reopened.close()
    with sqlite3.connect(tmp_path / "server.db") as db:
        assert db.execute("SELECT room, user_id FROM bans").fetchall() == [("kept", 7)]


async def test_upgrading_dates_stored_rooms_and_users_as_seen_now(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    with sqlite3.connect(path) as db:
        db.executescript(f"{MIGRATIONS[0]}; PRAGMA user_version = 1;")
        db.execute("INSERT INTO rooms VALUES ('old', 1, '', 50, 1, 0, 3)")  # as schema 1 stored it
        db.execute("INSERT INTO users VALUES (1, ?, 'ann', '#ffffff', '', 0)", (hash_token("t"),))
        db.execute("INSERT INTO users VALUES (2, ?, 'bob', '#ffffff', '', 1234)", (hash_token("u"),))
    before = time.time_ns() // 1000
    storage = Storage(path)
    startup = await storage.open()
    after = time.time_ns() // 1000
    [room] = startup.rooms
    assert before - 1_000_000 <= room.last_used_us <= after
    ann = await storage.user_by_token(hash_token("t"))
    assert ann is not None and before - 1_000_000 <= ann.last_seen_us <= after
    bob = await storage.user_by_token(hash_token("u"))
    assert bob is not None and bob.last_seen_us == 1234
    assert await storage.new_user_id() == 3  # the id counter starts above the users already stored
    await storage.close()


async def test_connections_are_counted_by_address_and_an_address_is_forgotten_at_zero(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "server.db")
    await storage.open()
    storage.connection_opened("1.1.1.1")
    storage.connection_opened("1.1.1.1")
    assert (storage.connections_from("1.1.1.1"), storage.connections_from("2.2.2.2")) == (2, 0)
    storage.connection_closed("1.1.1.1")
    assert storage.connections_from("1.1.1.1") == 1
    storage.connection_closed("1.1.1.1")
    assert storage.census() == {"addresses": 0}
    await storage.close()
