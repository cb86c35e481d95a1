"""One server per database: an exclusive lock held for the life of the server that opened it.

    lock = DatabaseLock.acquire(db_path)    # DatabaseInUse if another server (any process) holds it
    lock.advertise("ws://127.0.0.1:8765/api/websocket")
    lock.release()                          # or the process ends: the kernel drops the lock with it

The lock is an flock on `<db>.lock` beside the database. Two relays writing one SQLite file would each
hand out the same user ids and overwrite each other's rows, so a second one must never open it. The lock
file also says who holds it (pid and, once listening, the server's URL), so a second TUI can join the
server that holds its database instead of starting its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RETRIES = 5


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a database: a process id and the URL it serves (empty until it listens)."""

    pid: int
    url: str = ""


class DatabaseInUse(Exception):
    """Another live server holds the database; str() is one sentence with the way out."""

    def __init__(self, db_path: Path, holder: Holder | None) -> None:
        self.db_path = db_path
        self.holder = holder
        who = "another pianorhythm-tui server"
        if holder is not None and holder.pid:
            who += f" (process {holder.pid}" + (f", serving {holder.url})" if holder.url else ")")
        super().__init__(
            f"The database {db_path} is in use by {who}; stop that server or give this one its own --db PATH."
        )


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class DatabaseLock:
    def __init__(self, db_path: Path, fd: int) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: Path) -> DatabaseLock:
        """Hold `db_path` for this server; DatabaseInUse if another holds it (in this process or another)."""
        path = lock_path(db_path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            cls._lock(fd, db_path)
        except BaseException:
            os.close(fd)
            raise
        lock = cls(db_path, fd)
        lock._write(Holder(os.getpid()))
        return lock

    @staticmethod
    def _lock(fd: int, db_path: Path) -> None:
        for _ in range(RETRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                holder = read_holder(db_path)
                if holder is not None:
                    raise DatabaseInUse(db_path, holder) from None
                time.sleep(0.01)  # nobody holds it: someone only looked (read_holder's shared lock)
        raise DatabaseInUse(db_path, None)

    def advertise(self, url: str) -> None:
        """Say where this server listens, for a second TUI that finds the database taken."""
        self._write(Holder(os.getpid(), url))

    def _write(self, holder: Holder) -> None:
        if self._fd is None:
            return
        data = json.dumps({"pid": holder.pid, "url": holder.url}).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError as exc:  # the lock holds all the same; only the address is not shared
            log.warning("could not write %s: %s", self.path, exc)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock


def read_holder(db_path: Path) -> Holder | None:
    """Who holds `db_path` now: None if nobody does; pid 0 while the holder has not written itself yet."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: read who holds it
        else:
            return None  # nobody holds it (a stale file from a server that stopped)
        data = os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    try:
        fields = json.loads(data)
        return Holder(int(fields["pid"]), str(fields.get("url", "")))
    except (ValueError, KeyError, TypeError):
        return Holder(0)  # being written this very moment
